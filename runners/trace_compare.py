"""The advisor's analytic memory estimate next to a fake-tensor trace, per category.

Used by `tunewise estimate --trace` and benchmarks/estimate_trace.py.  Categories map
one-to-one except that the trace's frozen DPO reference copy counts as analytic
"weights" and its few "other" bytes (input ids) as "activations".  Totals compare the
analytic *allocated* memory (every part except `overhead`: CUDA context and allocator
reserve are not tensors) with the traced peak of live tensor bytes.

Per category the trace gives two numbers: the category's bytes at the moment of the
overall peak, and the category's own peak during the step.  The analytic parts are
per-category maxima added together, so "own peak" is the like-for-like number; the
total is compared with the true overall peak.
"""

from __future__ import annotations

GIB = 1024**3
PARTS = ("weights", "adapter", "gradients", "optimizer", "activations")


def traced_parts(result, which: str = "category_peaks") -> dict[str, float]:
    """TraceResult bytes in GiB, folded into the estimator's categories."""
    raw = getattr(result, which)
    parts = {k: raw.get(k, 0) for k in PARTS}
    parts["weights"] += raw.get("reference", 0)
    parts["activations"] += raw.get("other", 0)
    return {k: v / GIB for k, v in parts.items()}


def compare(memory_gib: dict, result) -> dict:
    """Rows of analytic vs traced GiB and the relative error (analytic - traced) / traced."""
    own, at_peak = traced_parts(result), traced_parts(result, "at_peak")
    rows = {}
    for part in PARTS:
        analytic = float(memory_gib.get(part, 0.0))
        rows[part] = {"analytic_gib": round(analytic, 3), "traced_gib": round(own[part], 3),
                      "traced_at_peak_gib": round(at_peak[part], 3),
                      "error": _error(analytic, own[part])}
    allocated = sum(float(memory_gib.get(p, 0.0)) for p in PARTS)
    traced_total = result.peak_bytes / GIB
    rows["total"] = {"analytic_gib": round(allocated, 3), "traced_gib": round(traced_total, 3),
                     "traced_at_peak_gib": round(traced_total, 3),
                     "error": _error(allocated, traced_total)}
    return rows


def _error(analytic: float, traced: float) -> float | None:
    if traced < 1e-6:  # 1 KiB: nothing to be relative to
        return None if analytic < 1e-6 else float("inf")
    return round((analytic - traced) / traced, 4)


def trace_for_estimate(model: str, est, *, adapter: bool = True) -> dict:
    """Trace the setting of an advisor Estimate and return the "trace" JSON block.

    `adapter` mirrors `tunewise estimate --adapter/--no-adapter` for DPO.  The trace
    covers one device without sharding: with --gpus/ZeRO it says so in `notes`.
    """
    from runners.trace import trace_extrapolated

    settings = est.settings.replace(dpo_lora=adapter)
    result = trace_extrapolated(model, est.method, settings)
    notes = list(result.approximations)
    if result.extrapolated_from:
        notes.append(f"traced {result.extrapolated_from[0]} and {result.extrapolated_from[1]} "
                     f"decoder layers, extrapolated per phase to {result.layers} "
                     "(exact for identical layers)")
    if est.gpus > 1 or est.settings.zero_stage:
        notes.append("the trace is one device without sharding; the estimate is per device "
                     f"over {est.gpus} devices (ZeRO stage {est.settings.zero_stage})")
    return {"schema": "tunewise/trace/v1", "peak_gib": round(result.peak_bytes / GIB, 3),
            "peak_phase": result.peak_phase, "trainable_params": result.trainable_params,
            "params": result.params, "seconds": result.seconds,
            "comparison": compare(est.memory_gib, result), "notes": notes}


def render_comparison(block: dict) -> str:
    """The "trace" block as a small table for the terminal."""
    lines = ["", f"  traced step (fake tensors, {block['seconds']:.0f} s): peak {block['peak_gib']:.2f} GiB "
             f"during {block['peak_phase']}",
             f"    {'part':<12} {'analytic':>9} {'traced':>9} {'at peak':>9} {'error':>8}"]
    for part, row in block["comparison"].items():
        err = row["error"]
        err_text = "-" if err is None else ("inf" if err == float("inf") else f"{err:+.1%}")
        label = "total*" if part == "total" else part
        lines.append(f"    {label:<12} {row['analytic_gib']:>9.2f} {row['traced_gib']:>9.2f} "
                     f"{row['traced_at_peak_gib']:>9.2f} {err_text:>8}")
    lines.append("    * analytic total without overhead (CUDA context, allocator) vs the traced peak")
    lines += [f"    - {note}" for note in block["notes"]]
    return "\n".join(lines)
