"""The headline: what was recommended, what it measurably bought and cost, and whether the
advisor's recommendation held up -- in plain words for someone who reads nothing else.

"Held up" rules (checked in order, first match wins):
  * no advice                              -> no verdict (status None)
  * no run used the recommended method     -> "cannot tell yet"
  * that run did not complete              -> "did not hold up"
  * no evaluation of that run              -> "cannot tell yet"
  * domain verdict is not "gain"           -> "did not hold up"
  * a retention task regressed             -> "partly held up"
  * another run's domain interval lies wholly above this run's gain -> "partly held up"
  * otherwise                              -> "held up"
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.inputs import LoadedRun, ReportInputs
from reports.outcomes import Change, RunOutcome
from reports.text import fmt_duration, fmt_signed, fmt_usd, verdict_label


@dataclass(frozen=True)
class Headline:
    recommended: str | None
    focus_run: str | None
    domain: Change | None
    worst: Change | None
    time_s: float | None
    cost_usd: float | None
    status: str | None  # held up | partly held up | did not hold up | cannot tell yet
    reason: str
    lines: list[str] = field(default_factory=list)  # plain text; escaped when rendered


def _focus(inputs: ReportInputs, outcomes: list[RunOutcome], method: str | None):
    """The run the headline is about: the recommended method's best run, else the best run."""
    by_name = {o.run: o for o in outcomes}
    runs = [r for r in inputs.runs if method is None or r.record.method == method]
    names = [r.name for r in runs] or ([o.run for o in outcomes if o.method == method] if method else [])
    if method is None and not names:
        names = [o.run for o in outcomes]

    def gain(name: str) -> float:
        outcome = by_name.get(name)
        return outcome.domain.diff if outcome and outcome.domain else float("-inf")

    if not names:
        return None, None, None
    best = max(names, key=gain)
    run = next((r for r in inputs.runs if r.name == best), None)
    return best, run, by_name.get(best)


def measured_cost(run: LoadedRun) -> tuple[float | None, str]:
    """Cost = measured training hours x the planned GPU's price per hour.

    The price is the estimate's `hardware.usd_per_hour`, else cost_usd / time_hours of the
    estimate.  A run measured on CPU for a GPU plan is not priced (it would be fiction).
    """
    rec, est = run.record, run.estimate
    seconds = rec.train_time_s if rec.train_time_s is not None else rec.wall_time_s
    if seconds is None or est is None:
        return None, "no estimate or time to price"
    price = est.usd_per_hour
    if price is None and est.cost_usd is not None and est.time_hours:
        price = est.cost_usd / est.time_hours
    if price is None:
        return None, f"no price for {est.hardware or 'the planned hardware'}"
    device = rec.peak_memory.device if rec.peak_memory else None
    if device == "cpu" and "cpu" not in (est.hardware or "").lower():
        return None, f"measured on CPU, planned for {est.hardware}"
    return seconds / 3600.0 * price, f"at {fmt_usd(price)}/h for {est.hardware or 'the planned GPU'}"


def _status(inputs, method, focus, run, outcome, outcomes) -> tuple[str | None, str]:
    if inputs.advice is None or method is None:
        return None, "No advice was given, so the recommendation cannot be checked."
    if focus is None:
        return "cannot tell yet", f"No run used the recommended method ({method})."
    if run is not None and run.record.status != "completed":
        error = f": {run.record.error}" if run.record.error else ""
        return "did not hold up", f"The {method} run {focus} {run.record.status}{error}."
    if outcome is None or outcome.domain is None:
        return "cannot tell yet", f"Run {focus} has no domain evaluation yet."
    if outcome.domain.verdict != "gain":
        return "did not hold up", f"{focus} showed no measurable domain gain ({verdict_label(outcome.domain.verdict)})."
    if outcome.regressions:
        tasks = ", ".join(c.task for c in outcome.regressions)
        return "partly held up", f"{focus} gained on the domain but regressed on {tasks}."
    better = [
        o for o in outcomes
        if o.run != focus and o.domain and not o.regressions and o.domain.low > outcome.domain.diff
    ]
    if better:
        other = max(better, key=lambda o: o.domain.diff)
        return "partly held up", (
            f"{other.run} ({other.method}) gained clearly more on the domain "
            f"({fmt_signed(other.domain.diff, other.domain.unit)} vs {fmt_signed(outcome.domain.diff, outcome.domain.unit)})."
        )
    return "held up", f"{focus} gained on the domain without a detectable general-skill regression."


def build_headline(inputs: ReportInputs, outcomes: list[RunOutcome]) -> Headline:
    method = inputs.advice.method if inputs.advice else None
    focus, run, outcome = _focus(inputs, outcomes, method)
    status, reason = _status(inputs, method, focus, run, outcome, outcomes)
    lines = [_recommendation_line(inputs)]
    domain = outcome.domain if outcome else None
    worst = outcome.worst_retention if outcome else None
    if domain:
        lines.append(
            f"Measured: {focus} ({outcome.method}) changed the domain score on {domain.task} by "
            f"{fmt_signed(domain.diff, domain.unit)} (95% interval {domain.low:+.1f} to {domain.high:+.1f}; "
            f"{verdict_label(domain.verdict)}, n={domain.n})."
        )
    if worst:
        lines.append(_worst_line(worst, outcome))
    time_s = cost = None
    if run is not None:
        rec = run.record
        time_s = rec.train_time_s if rec.train_time_s is not None else rec.wall_time_s
        cost, how = measured_cost(run)
        cost_text = f"about {fmt_usd(cost)} ({how})" if cost is not None else f"not priced ({how})"
        lines.append(f"Training {rec.name} took {fmt_duration(time_s)}; cost {cost_text}.")
    if status:
        lines.append(f"The advisor's recommendation {status}: {reason}")
    return Headline(method, focus, domain, worst, time_s, cost, status, reason, lines)


def _recommendation_line(inputs: ReportInputs) -> str:
    advice = inputs.advice
    if advice is None or advice.method is None:
        return "No advisor recommendation was supplied."
    chosen = next((c for c in advice.candidates if c.method == advice.method), None)
    where = ""
    if chosen is not None:
        where = f" for {chosen.model or 'the model'} on {chosen.hardware or 'the planned hardware'}"
    return f"The advisor recommended {advice.method}{where}."


def _worst_line(worst: Change, outcome: RunOutcome) -> str:
    if outcome.regressions:
        tasks = ", ".join(c.task for c in outcome.regressions)
        return (
            f"Largest general-skill regression: {fmt_signed(worst.diff, worst.unit)} on {worst.task} "
            f"(95% interval {worst.low:+.1f} to {worst.high:+.1f}); regressed tasks: {tasks}."
        )
    return (
        f"No general-skill task regressed detectably; the worst change was "
        f"{fmt_signed(worst.diff, worst.unit)} on {worst.task} "
        f"(95% interval {worst.low:+.1f} to {worst.high:+.1f}; {verdict_label(worst.verdict)})."
    )
