"""Training curves from each run's metrics.jsonl: loss per step, and DPO reward margins.

metrics.jsonl rows (runners/_callbacks.py MetricsLog) carry `step`, `loss`, `lr`,
`grad_norm`, `tokens`, `tokens_per_s`; DPO rows add `reward_margin` (TRL's
`rewards/margins`: mean chosen-minus-rejected implicit reward, which should grow from 0;
TRL's raw key is accepted too).
Rows without a loss (e.g. the final summary) are skipped.
"""

from __future__ import annotations

from reports.figure_style import apply_style
from reports.inputs import LoadedRun
from reports.text import esc_plot, finite

MARGIN_KEYS = ("reward_margin", "rewards/margins", "train/rewards/margins")


def curve(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for rows that have a finite `key`; step falls back to row order."""
    steps, values = [], []
    for index, row in enumerate(rows, start=1):
        value = finite(row.get(key))
        if value is None:
            continue
        step = finite(row.get("step"))
        steps.append(step if step is not None else float(index))
        values.append(value)
    return steps, values


def margin_key(rows: list[dict]) -> str | None:
    for key in MARGIN_KEYS:
        if any(finite(row.get(key)) is not None for row in rows):
            return key
    return None


def loss_figure(runs: list[LoadedRun]):
    """Loss curves per run; a second panel with reward margins when any run has them.

    A run that did not complete is drawn dashed and ends in an X where it stopped.
    Returns None when no run logged a loss.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curves = [(run, curve(run.metrics, "loss")) for run in runs]
    curves = [(run, xy) for run, xy in curves if xy[0]]
    margins = [(run, curve(run.metrics, key)) for run in runs if (key := margin_key(run.metrics))]
    if not curves and not margins:
        return None
    rows = 2 if margins and curves else 1
    titles = (["Training loss"] if curves else []) + (["DPO reward margin (chosen − rejected)"] if margins else [])
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.12)
    for run, (steps, values) in curves:
        fig.add_trace(_line(go, run, steps, values, "loss"), row=1, col=1)
    for run, (steps, values) in margins:
        fig.add_trace(_line(go, run, steps, values, "margin"), row=rows, col=1)
    fig.update_xaxes(title_text="step", row=rows, col=1)
    apply_style(fig, height=380 * rows)
    return fig


def _line(go, run: LoadedRun, steps: list[float], values: list[float], what: str):
    status = run.record.status
    done = status == "completed"
    name = esc_plot(run.name) if done else f"{esc_plot(run.name)} ({esc_plot(status)})"
    symbols = ["circle"] * (len(values) - 1) + ["circle" if done else "x"]
    sizes = [4] * (len(values) - 1) + [4 if done else 12]
    return go.Scatter(
        name=name + ("" if what == "loss" else " margin"),
        x=steps,
        y=values,
        mode="lines+markers",
        line={"dash": "solid" if done else "dash"},
        marker={"symbol": symbols, "size": sizes},
        legendgroup=esc_plot(run.name),
        hovertemplate=f"{name}<br>step %{{x}}<br>{what} %{{y:.4f}}<extra></extra>",
    )
