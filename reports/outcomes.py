"""What each run bought and broke, in display units, from the eval record's comparisons.

Conventions (eval_notes §3-4):
  * accuracy-like metrics (base and score both in [0, 1]) are shown in percentage points,
    diff_pp = 100 * (score - base); other metrics keep their own units;
  * "better" is always positive: for a task whose TaskScore says higher_is_better=False
    (e.g. perplexity) the sign of the difference and its interval are flipped;
  * the domain outcome of a run is its domain comparison with the most examples (several
    domain tasks are all shown in the forest plot); DPO runs without a domain comparison
    use their preference comparison;
  * forgetting is the *worst* retention change (lowest diff), with its own paired interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.records import Comparison, EvalRecord


@dataclass(frozen=True)
class Change:
    """One run-vs-base comparison in display units (positive = better)."""

    run: str
    task: str
    kind: str
    metric: str
    diff: float
    low: float
    high: float
    unit: str  # "pp" or the metric's own name
    verdict: str
    n: int
    base: float
    score: float
    p_value: float | None = None


@dataclass(frozen=True)
class RunOutcome:
    run: str
    method: str
    domain: Change | None
    domain_tasks: int
    worst_retention: Change | None
    regressions: tuple[Change, ...]


def _is_fraction(comp: Comparison) -> bool:
    return 0.0 <= comp.base <= 1.0 and 0.0 <= comp.score <= 1.0


def to_change(comp: Comparison, higher_is_better: bool = True) -> Change:
    scale, unit = (100.0, "pp") if _is_fraction(comp) else (1.0, comp.metric)
    diff, low, high = comp.diff * scale, comp.ci_low * scale, comp.ci_high * scale
    if not higher_is_better:
        diff, low, high = -diff, -high, -low
    return Change(
        run=comp.run,
        task=comp.task,
        kind=comp.kind,
        metric=comp.metric,
        diff=diff,
        low=low,
        high=high,
        unit=unit,
        verdict=comp.verdict,
        n=comp.n,
        base=comp.base,
        score=comp.score,
        p_value=comp.p_value,
    )


def changes(record: EvalRecord) -> list[Change]:
    """Every comparison of the record as a Change, in the record's order."""
    better = {
        (variant.name, score.task): score.higher_is_better
        for variant in record.variants
        for score in variant.scores
    }
    return [to_change(c, better.get((c.run, c.task), True)) for c in record.comparisons]


def run_outcomes(record: EvalRecord) -> list[RunOutcome]:
    """One outcome per run that has comparisons, in first-appearance order."""
    methods = {v.name: v.method for v in record.variants}
    by_run: dict[str, list[Change]] = {}
    for change in changes(record):
        by_run.setdefault(change.run, []).append(change)
    outcomes = []
    for run, items in by_run.items():
        domain = [c for c in items if c.kind == "domain"] or [c for c in items if c.kind == "preference"]
        retention = [c for c in items if c.kind == "retention"]
        outcomes.append(
            RunOutcome(
                run=run,
                method=methods.get(run, "?"),
                domain=max(domain, key=lambda c: c.n) if domain else None,
                domain_tasks=len(domain),
                worst_retention=min(retention, key=lambda c: c.diff) if retention else None,
                regressions=tuple(c for c in items if c.verdict == "regression"),
            )
        )
    return outcomes
