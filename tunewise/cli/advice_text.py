"""Human-readable `tunewise advise` output: the candidates table, the reasons, the settings
each with the rule that set it, notes, data findings, and the fixes when something does
not fit."""

from __future__ import annotations

from typing import Any

from advisor.advise import Advice


def render(advice: Advice) -> str:
    lines = _header(advice)
    lines += ["", *_table(advice), ""]
    lines.append(f"Recommendation: {advice.method.value}")
    lines += [f"  {r}" for r in advice.reasons]
    lines += ["", "Settings (value, the rule that set it, why):"]
    width = max((len(d.field) for d in advice.chosen.derivations), default=0)
    for d in advice.chosen.derivations:
        lines.append(f"  {d.field:<{width}}  {_value(d.value):<10} [{d.rule}] {d.reason}")
    notes = advice.notes + [f"estimate: {w}" for w in advice.chosen.estimate.get("warnings", [])]
    if notes:
        lines += ["", "Notes:", *[f"  - {n}" for n in notes]]
    if advice.profile is not None and advice.profile.warnings():
        lines += ["", "Data:", *[f"  - {w}" for w in advice.profile.warnings()]]
    if advice.scale_out:
        lines += ["", "Fewest GPUs that make each method fit (strategy and why):"]
        lines += [f"  - {plan['line']}" for plan in advice.scale_out.values()]
    for method, fixes in advice.fixes.items():
        lines += ["", f"To make {method.value} fit (cheapest first, each re-estimated):"]
        if not fixes:
            lines.append("  nothing tried makes it fit: a smaller model or larger devices are needed")
        for f in fixes:
            lines.append(f"  - {f['change']}: {f['total_gib']:.1f} GiB/device, {_hours(f['time_hours'])}, "
                         f"{_usd(f['cost_usd'])}")
    if advice.plan_path:
        lines += ["", f"Plan written to {advice.plan_path}  (next: tunewise run {advice.plan_path})"]
    return "\n".join(lines)


def _header(advice: Advice) -> list[str]:
    model, hw = advice.model, advice.hardware
    out = [f"{model['name']} ({_params(model['params'])} parameters) on {hw['count']} x {hw['name']} "
           f"({hw['memory_gib']:.1f} GiB each)"]
    p = advice.profile
    if p is not None:
        tok = p.tokens
        stats = (f"; tokens p50 {tok.p50} / p95 {tok.p95} / max {tok.max} ({tok.method})" if tok else "")
        out.append(f"data: {p.path}: {p.format}, {p.rows:,} rows, {p.examples:,} unique{stats}")
    else:
        req = advice.request
        size = f"{req.examples:,} examples" if req.examples else "an unknown number of examples"
        per = f" x {req.tokens_per_example:g} tokens" if req.tokens_per_example else ""
        out.append(f"data: none given; planning for {size}{per}")
    return out


def _table(advice: Advice) -> list[str]:
    header = ("method", "fits", "GiB/device", "time", "cost", "verdict")
    rows: list[tuple[str, ...]] = []
    for cand in advice.candidates.values():
        fits = "yes" if cand.fits else ("n/a" if not cand.supported else "no")
        trains = cand.method.trains
        rows.append((cand.method.value, fits, f"{cand.total_gib:.1f}", _hours(cand.time_hours) if trains else "-",
                     _usd(cand.cost_usd) if trains else "-", cand.verdict))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if i == 2 else '<'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out = [line.rstrip() for line in out + [fmt.format(*r) for r in rows]]
    # a viable method that merely fits says nothing the table does not
    reasons = [(c.method.value, c.verdict_reason) for c in advice.candidates.values()
               if (c.verdict != "recommended" or not c.fits) and not (c.verdict == "viable" and c.verdict_reason == "fits")]
    out += [f"  {m}: {r}" for m, r in reasons if r]
    return out


def _params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours * 60 < 1:
        return "<1 min"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def _usd(usd: float | None) -> str:
    return "-" if usd is None else f"${usd:,.2f}"


def _value(value: Any) -> str:
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return f"{value:.0e}"
    return str(value)
