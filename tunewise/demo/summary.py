"""Step 4 of the demo: the short table printed at the end, and summary.json.

Per run: the domain gain and the worst general-skill change, each with its paired 95%
interval from eval.json (reports.outcomes: domain = the domain comparison with the most
examples, forgetting = the lowest retention difference), the measured peak memory (CPU:
the training's peak resident-set growth, MiB) and the wall time.  Differences are percentage
points of accuracy (positive = better).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SummaryRow:
    run: str
    method: str
    status: str
    domain_task: str | None
    domain_pp: float | None
    domain_ci: tuple[float, float] | None
    domain_verdict: str | None
    retention_task: str | None
    retention_pp: float | None
    retention_ci: tuple[float, float] | None
    retention_verdict: str | None
    peak_mib: float | None
    wall_s: float | None
    preference_pp: float | None = None  # held-out preference pairs: chosen preferred (DPO/RLHF's target)
    preference_ci: tuple[float, float] | None = None
    preference_verdict: str | None = None

    @property
    def domain_gain(self) -> bool:
        """A measured gain: the paired test's verdict, or an interval entirely above zero."""
        return self.domain_verdict == "gain" or (self.domain_ci is not None and self.domain_ci[0] > 0)


def summarise(records: dict[str, Any], eval_record) -> list[SummaryRow]:
    """One row per run: `records` maps run name -> RunRecord, in run order."""
    from reports.outcomes import changes, run_outcomes

    outcomes = {o.run: o for o in run_outcomes(eval_record)}
    preference = {c.run: c for c in changes(eval_record) if c.kind == "preference"}
    rows = []
    for name, record in records.items():
        outcome = outcomes.get(name)
        domain = outcome.domain if outcome else None
        worst = outcome.worst_retention if outcome else None
        peak_gib = _peak_gib(record.peak_memory)
        rows.append(SummaryRow(
            run=name, method=record.method, status=record.status,
            domain_task=domain.task if domain else None, domain_pp=domain.diff if domain else None,
            domain_ci=(domain.low, domain.high) if domain else None, domain_verdict=domain.verdict if domain else None,
            retention_task=worst.task if worst else None, retention_pp=worst.diff if worst else None,
            retention_ci=(worst.low, worst.high) if worst else None,
            retention_verdict=worst.verdict if worst else None,
            peak_mib=round(peak_gib * 1024, 1) if peak_gib is not None else None,
            wall_s=record.wall_time_s,
            **_preference(preference.get(name)),
        ))
    return rows


def _preference(change) -> dict[str, Any]:
    if change is None:
        return {}
    return {"preference_pp": change.diff, "preference_ci": (change.low, change.high),
            "preference_verdict": change.verdict}


def _peak_gib(peak) -> float | None:
    """CUDA: max allocated; CPU: the training's peak RSS growth (the record's measure, DESIGN.md)."""
    if peak is None:
        return None
    return peak.allocated_gib if peak.allocated_gib is not None else peak.rss_delta_gib


def render(rows: list[SummaryRow]) -> str:
    """The final table: method, domain gain [CI], worst retention change [CI], memory, time."""
    head = (f"{'run':<8} {'domain gain, pp [95% CI]':<27} {'worst general-skill change, pp [95% CI]':<46} "
            f"{'RSS +MiB':>8} {'time s':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        domain = _change(r.domain_pp, r.domain_ci, r.domain_verdict)
        retention = _change(r.retention_pp, r.retention_ci, r.retention_verdict)
        if r.retention_task:
            retention = f"{retention} {r.retention_task}"
        peak = f"{r.peak_mib:,.0f}" if r.peak_mib is not None else "-"
        wall = f"{r.wall_s:,.0f}" if r.wall_s is not None else "-"
        lines.append(f"{r.run:<8} {domain:<27} {retention:<46} {peak:>8} {wall:>7}")
    for r in rows:  # what preference tuning is for, measured on held-out pairs
        if r.method in ("dpo", "rlhf") and r.preference_pp is not None:
            lines.append(f"{r.run}: held-out preference pairs (chosen preferred), pp [95% CI]: "
                         f"{_change(r.preference_pp, r.preference_ci, r.preference_verdict).strip()}")
    return "\n".join(lines)


def _change(pp: float | None, ci: tuple[float, float] | None, verdict: str | None) -> str:
    if pp is None or ci is None:
        return "-"
    mark = {"gain": "+", "regression": "!"}.get(verdict or "", " ")
    return f"{pp:+6.1f} [{ci[0]:+6.1f}, {ci[1]:+6.1f}] {mark}"


def to_json(rows: list[SummaryRow]) -> list[dict[str, Any]]:
    return [asdict(r) | {"domain_gain": r.domain_gain} for r in rows]
