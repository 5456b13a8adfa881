"""Resource figures: memory breakdown, estimate vs measured, cost and time across GPUs.

Pure functions: records/views in, `plotly.graph_objects.Figure` out (plotly is imported
inside them).  Every user string is passed through `esc` (see reports/text.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.figure_style import apply_style
from reports.inputs import LoadedRun
from reports.text import MEMORY_COLORS, MEMORY_PARTS, esc_plot, fmt_ratio
from reports.views import EstimateView


def memory_breakdown_figure(bars: list[tuple[str, EstimateView]], capacity_gib: float | None, hardware: str | None):
    """Stacked bars of the estimated per-device memory parts, one bar per label.

    Parts (DESIGN.md "Estimate"): weights, gradients, optimizer, activations, adapter,
    overhead; they sum to `total`.  A horizontal line marks the GPU's capacity.
    Returns None when no bar has any memory part.
    """
    import plotly.graph_objects as go

    bars = [(label, est) for label, est in bars if est.memory]
    if not bars:
        return None
    labels = [esc_plot(label) for label, _ in bars]
    fig = go.Figure()
    for part in MEMORY_PARTS:
        values = [est.memory.get(part) for _, est in bars]
        if all(v is None for v in values):
            continue
        fig.add_bar(
            name=part,
            x=labels,
            y=[v or 0.0 for v in values],
            marker_color=MEMORY_COLORS[part],
            hovertemplate=f"%{{x}}<br>{part}: %{{y:.2f}} GiB<extra></extra>",
        )
    totals = [est.total_gib if est.total_gib is not None else sum(est.memory.values()) for _, est in bars]
    fig.add_scatter(
        name="total",
        x=labels,
        y=totals,
        mode="text",
        text=[_fit_text(total, est) for total, (_, est) in zip(totals, bars, strict=True)],
        textposition="top center",
        hoverinfo="skip",
        showlegend=False,
    )
    apply_style(fig, barmode="stack", yaxis_title="GiB per device", legend_traceorder="normal")
    if capacity_gib is not None:
        fig.add_hline(
            y=capacity_gib,
            line={"color": "#222", "dash": "dash", "width": 2},
            annotation_text=esc_plot(f"{hardware or 'GPU'} capacity {capacity_gib:g} GiB"),
            annotation_position="top left",
        )
        top = max([capacity_gib, *totals])
        fig.update_yaxes(range=[0, top * 1.15])
    return fig


def _fit_text(total: float, est: EstimateView) -> str:
    text = f"{total:.1f} GiB"
    if est.supported is False:
        return text + " · not supported"
    if est.fits is False:
        return text + " · does not fit"
    return text


@dataclass(frozen=True)
class MeasuredRow:
    """Estimate vs measurement for one run; ratio = measured / estimate."""

    run: str
    estimate_gib: float | None
    measured_gib: float | None
    estimate_s: float | None  # scaled to the tokens actually trained (see measured_rows)
    measured_s: float | None
    device: str | None
    note: str | None = None

    @property
    def memory_ratio(self) -> float | None:
        return _ratio(self.measured_gib, self.estimate_gib)

    @property
    def time_ratio(self) -> float | None:
        return _ratio(self.measured_s, self.estimate_s)


def _ratio(measured: float | None, estimate: float | None) -> float | None:
    if measured is None or not estimate:
        return None
    return measured / estimate


def measured_rows(runs: list[LoadedRun]) -> list[MeasuredRow]:
    """Pair each run's planned estimate with what it measured.

    Memory: estimate `memory_gib.total` (per device) vs `PeakMemory.comparable_gib`
    (CUDA reserved, or CPU RSS growth).  Time: estimate `time_hours` is for the planned
    tokens; when the run trained a different number of tokens (stopped early, quick
    mode) the estimate is scaled linearly, t_est * train_tokens / planned_tokens, because
    the time model is tokens * FLOPs-per-token / throughput (memory_formulas.md).
    """
    rows = []
    for run in runs:
        rec, est = run.record, run.estimate
        if est is None and rec.peak_memory is None and rec.train_time_s is None:
            continue
        est_s, notes = None, []
        if est is not None and est.time_hours is not None:
            est_s = est.time_hours * 3600.0
            if est.tokens and rec.train_tokens and rec.train_tokens != est.tokens:
                est_s *= rec.train_tokens / est.tokens
                notes.append(f"time estimate scaled to {rec.train_tokens:,} trained tokens")
        device = rec.peak_memory.device if rec.peak_memory else None
        if device and device != "cuda" and est is not None and est.hardware:
            notes.append(f"measured on {device}, estimated for {est.hardware}")
        if rec.status != "completed":
            notes.append(f"run {rec.status}")
        rows.append(
            MeasuredRow(
                run=rec.name,
                estimate_gib=est.total_gib if est else None,
                measured_gib=rec.peak_memory.comparable_gib if rec.peak_memory else None,
                estimate_s=est_s,
                measured_s=rec.train_time_s if rec.train_time_s is not None else rec.wall_time_s,
                device=device,
                note="; ".join(notes) or None,
            )
        )
    return rows


def time_unit(max_seconds: float) -> tuple[float, str]:
    """A divisor and unit name so that the largest time reads as a small number."""
    if max_seconds < 120:
        return 1.0, "s"
    if max_seconds < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def estimate_vs_measured_figure(rows: list[MeasuredRow]):
    """Side-by-side bars per run: estimated vs measured peak memory, and time; ratio as text."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        return None
    times = [t for r in rows for t in (r.estimate_s, r.measured_s) if t is not None]
    div, unit = time_unit(max(times, default=0.0))
    names = [esc_plot(r.run) for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Peak memory (GiB)", f"Training time ({unit})"))
    panels = (
        (1, [r.estimate_gib for r in rows], [r.measured_gib for r in rows], [r.memory_ratio for r in rows], "GiB"),
        (2, [_div(r.estimate_s, div) for r in rows], [_div(r.measured_s, div) for r in rows], [r.time_ratio for r in rows], unit),
    )
    for col, est, meas, ratio, label in panels:
        fig.add_trace(
            go.Bar(name="estimate", x=names, y=est, marker_color="#9ecae9", legendgroup="estimate",
                   showlegend=col == 1, hovertemplate=f"%{{x}}<br>estimate: %{{y:.3g}} {label}<extra></extra>"),
            row=1, col=col,
        )
        fig.add_trace(
            go.Bar(name="measured", x=names, y=meas, marker_color="#3182bd", legendgroup="measured",
                   showlegend=col == 1, text=[f"{fmt_ratio(q)} est." if q is not None else "" for q in ratio],
                   textposition="outside", customdata=[esc_plot(r.note or "") for r in rows],
                   hovertemplate=f"%{{x}}<br>measured: %{{y:.3g}} {label}<br>%{{text}}<br>%{{customdata}}<extra></extra>"),
            row=1, col=col,
        )
    apply_style(fig, barmode="group")
    return fig


def _div(value: float | None, by: float) -> float | None:
    return None if value is None else value / by


def cost_time_figure(estimates: list[EstimateView]):
    """Grouped bars: cost (USD) and time (h) per method, one colour per GPU setup.

    Candidates that do not fit, are not supported, or have no price are left empty
    (None), never drawn as zero; the section text lists them.
    """
    from plotly.subplots import make_subplots

    usable = [e for e in estimates if e.time_hours is not None or e.cost_usd is not None]
    if not usable:
        return None
    setups = list(dict.fromkeys(_setup(e) for e in usable))
    methods = list(dict.fromkeys(e.method for e in usable))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Cost (USD)", "Time (hours)"))
    for setup in setups:
        by_method = {e.method: e for e in usable if _setup(e) == setup}
        for col, attr in ((1, "cost_usd"), (2, "time_hours")):
            values = [_usable_value(by_method.get(m), attr) for m in methods]
            fig.add_bar(
                name=esc_plot(setup), x=[esc_plot(m) for m in methods], y=values, legendgroup=esc_plot(setup),
                showlegend=col == 1, row=1, col=col,
                hovertemplate="%{x} on " + esc_plot(setup) + (": $%{y:,.2f}" if col == 1 else ": %{y:.2f} h") + "<extra></extra>",
            )
    apply_style(fig, barmode="group")
    return fig


def _setup(est: EstimateView) -> str:
    hardware = est.hardware or "unknown GPU"
    return f"{hardware} ×{est.gpus}" if est.gpus > 1 else hardware


def _usable_value(est: EstimateView | None, attr: str) -> float | None:
    if est is None or est.fits is False or est.supported is False:
        return None
    return getattr(est, attr)


def unusable(estimates: list[EstimateView]) -> list[str]:
    """Plain-text reasons for the empty bars of cost_time_figure, one per setup."""
    reasons: dict[tuple[str, str], list[str]] = {}
    for e in estimates:
        if e.supported is False:
            why = "not supported"
        elif e.fits is False:
            why = "does not fit"
        elif e.cost_usd is None and e.time_hours is not None:
            why = "no price"
        else:
            continue
        reasons.setdefault((_setup(e), why), []).append(e.method)
    return [f"{setup}: {', '.join(methods)} {why}" for (setup, why), methods in reasons.items()]
