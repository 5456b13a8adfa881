"""Plain-text rendering of `advise --probe` (measured vs analytic) and `--probe-data`
(held-out loss against examples, and how many more examples the target needs)."""

from __future__ import annotations

import math
from typing import Any


def render_probe(p: dict[str, Any]) -> str:
    """The probe as a three-column table: quantity, analytic (the advice), measured."""
    lines = [f"Probe: {p['steps']} real steps of {p['method']} on this machine ({p['device']}: {p['device_name']}), "
             f"{p['train_time_s']:.1f} s of training"]
    rows = [
        ("tokens/s", _num(p["analytic_tokens_per_s"]), _num(p["tokens_per_s"]) + " (steady state; average "
         + _num(p["tokens_per_s_average"]) + ")"),
        (p["memory_kind"] + " (GiB)", _gib(p["analytic_gib"]) + f" (total {_gib(p['analytic_total_gib'])})",
         _gib(p["measured_gib"])),
        (f"time for {_int(p['tokens'])} tokens", _hours(p["analytic_hours"]), _hours(p["measured_hours"])),
        ("cost", _usd(p["analytic_cost_usd"]), _usd(p["measured_cost_usd"])),
    ]
    header = ("", "analytic", "measured")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(2)]
    for row in (header, *rows):
        lines.append(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}".rstrip())
    lines += [f"  - {n}" for n in p.get("notes", [])]
    return "\n".join(lines)


def render_curve(c: dict[str, Any]) -> str:
    """Points, the fit, and the answer with its interval."""
    fit = c["fit"]
    lines = ["Data probe: held-out loss after short LoRA runs on growing shares of your data",
             f"  {'examples':>9}  {'steps':>5}  held-out loss"]
    for pt in c["points"]:
        err = f" ± {pt['stderr']:.3f}" if pt.get("stderr") is not None else ""
        lines.append(f"  {pt['examples']:>9,}  {pt['steps']:>5}  {pt['heldout_loss']:.4f}{err}")
    lines.append(f"  fit: L(n) = {fit['a']:.3f} + {fit['b']:.3g} * n^-{fit['c']:.3f}")
    for n, (mid, low, high) in c["predicted_loss"].items():
        lines.append(f"  predicted at {int(n):,} examples: {mid:.4f} (interval {low:.4f}-{high:.4f})")
    lines.append(_answer(c))
    lines += [f"  - {a}" for a in c["assumptions"]]
    return "\n".join(lines)


def _answer(c: dict[str, Any]) -> str:
    target = f"held-out loss {c['target_loss']:.4f} ({c['target_source']})"
    low, high = c["interval"]
    pct = "-".join(f"{q:.0%}" for q in c["interval_percentiles"])
    share = c["unreachable_share"]
    if c["examples_needed"] is None:
        return (f"  target {target}: not reachable with more data of this kind by the fit (floor "
                f"{c['fit']['a']:.4f}); unreachable in {share:.0%} of bootstrap resamples")
    more = max(0.0, c["more_examples"])
    span = f"{_count(low)} to {_count(high)}"
    return (f"  target {target}: about {_count(c['examples_needed'])} examples, {_count(more)} more than the "
            f"{c['examples_now']:,} you have ({pct} interval: {span} examples; unreachable in {share:.0%} "
            "of resamples)")


def _count(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "unreachable"
    return f"{value:,.0f}"


def _num(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _int(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _gib(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _hours(hours) -> str:
    if hours is None:
        return "-"
    if hours * 3600 < 60:
        return f"{hours * 3600:.1f} s"
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:,.1f} h"


def _usd(usd) -> str:
    return "-" if usd is None else f"${usd:,.2f}"
