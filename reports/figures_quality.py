"""Quality figures: domain gain vs forgetting, and the per-task forest plot.

Both show *paired* 95% intervals of the difference to the base model (eval_notes §3: two
independent stderrs are the wrong test).  Units and signs follow reports/outcomes.py:
percentage points for accuracy-like metrics, positive = better.
"""

from __future__ import annotations

from reports.figure_style import apply_style
from reports.outcomes import Change, RunOutcome
from reports.text import VERDICT_COLORS, esc_plot, verdict_label


def _error(change: Change) -> dict:
    """Asymmetric error bars: the interval [low, high] around diff."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [change.high - change.diff],
        "arrayminus": [change.diff - change.low],
        "thickness": 1.5,
    }


def _axis_unit(items: list[Change]) -> str:
    units = {c.unit for c in items}
    return "percentage points" if units == {"pp"} else "pp for accuracy-like metrics, else metric units"


def gain_forgetting_figure(outcomes: list[RunOutcome]):
    """Each run a point: x = domain change, y = worst general-skill (retention) change.

    The base model sits at the origin; up-and-right is better.  Error bars are each
    comparison's paired 95% interval.  Runs lacking a domain or a retention comparison
    are left out (the section says so).
    """
    import plotly.graph_objects as go

    points = [o for o in outcomes if o.domain is not None and o.worst_retention is not None]
    if not points:
        return None
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(name="base", x=[0.0], y=[0.0], mode="markers+text", text=["base"],
                   textposition="bottom right", marker={"symbol": "x", "size": 12, "color": "#222"},
                   hovertemplate="base model<extra></extra>")
    )
    for o in points:
        d, r = o.domain, o.worst_retention
        hover = (
            f"{esc_plot(o.run)} ({esc_plot(o.method)})<br>"
            f"domain {esc_plot(d.task)}: {d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}] {esc_plot(verdict_label(d.verdict))}<br>"
            f"worst retention {esc_plot(r.task)}: {r.diff:+.2f} [{r.low:+.2f}, {r.high:+.2f}] "
            f"{esc_plot(verdict_label(r.verdict))}<extra></extra>"
        )
        fig.add_trace(
            go.Scatter(name=esc_plot(o.run), x=[d.diff], y=[r.diff], mode="markers+text", text=[esc_plot(o.run)],
                       textposition="top center", marker={"size": 11},
                       error_x=_error(d), error_y=_error(r), hovertemplate=hover)
        )
    domain_unit = _axis_unit([o.domain for o in points])
    retention_unit = _axis_unit([o.worst_retention for o in points])
    apply_style(
        fig,
        xaxis={"title": f"domain gain ({domain_unit})", "zeroline": True, "zerolinewidth": 2},
        yaxis={"title": f"worst general-skill change ({retention_unit})", "zeroline": True, "zerolinewidth": 2},
    )
    return fig


def forest_figure(items: list[Change]):
    """Per run and task: the paired difference with its 95% interval, coloured by verdict."""
    import plotly.graph_objects as go

    if not items:
        return None
    labels = [f"{esc_plot(c.run)} · {esc_plot(c.task)}" for c in items]
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        chosen = [(label, c) for label, c in zip(labels, items, strict=True) if c.verdict == verdict]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                name=verdict_label(verdict),
                x=[c.diff for _, c in chosen],
                y=[label for label, _ in chosen],
                mode="markers",
                marker={"color": color, "size": 10, "symbol": "diamond"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [c.high - c.diff for _, c in chosen],
                    "arrayminus": [c.diff - c.low for _, c in chosen],
                    "color": color,
                },
                customdata=[[esc_plot(c.kind), c.low, c.high, c.n, esc_plot(c.unit)] for _, c in chosen],
                hovertemplate=(
                    "%{y} (%{customdata[0]})<br>%{x:+.2f} %{customdata[4]} "
                    "[%{customdata[1]:+.2f}, %{customdata[2]:+.2f}], n=%{customdata[3]}<br>"
                    + esc_plot(verdict_label(verdict)) + "<extra></extra>"
                ),
            )
        )
    fig.add_vline(x=0, line={"color": "#222", "width": 1})
    apply_style(
        fig,
        xaxis_title=f"change vs base ({_axis_unit(items)}), paired 95% interval",
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(labels)), "automargin": True},
        height=max(300, 60 + 28 * len(items)),
    )
    return fig
