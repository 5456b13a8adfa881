"""RLHF runs: the reward curve, the KL to the reference, and what the reward model knew.

metrics.jsonl rows of an rlhf run (runners/rlhf.py; trl RLOOTrainer logs) carry `reward`
(mean reward-model score of the policy's samples over the logging interval) and `kl`
(mean per-token log-ratio policy/reference of those samples).  The record's
`extra.rlhf` holds the reward model's held-out pair accuracy, the first/last windows of
both curves and a greedy before/after check on held-out prompts.
"""

from __future__ import annotations

from typing import Any

from reports.figure_style import apply_style
from reports.figures_training import curve
from reports.inputs import LoadedRun
from reports.text import esc_plot, finite

CURVES = (("reward", "Reward-model score of the policy's samples"), ("kl", "KL to the reference (per token)"))


def rlhf_runs(runs: list[LoadedRun]) -> list[LoadedRun]:
    """Runs with an RLHF reward curve (or at least an RLHF record)."""
    return [r for r in runs if r.record.method == "rlhf" or any(finite(m.get("reward")) is not None
                                                                  for m in r.metrics)]


def rlhf_figure(runs: list[LoadedRun]):
    """Reward and KL per step, one line per RLHF run; None when no run logged either."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(key, title, [(run, curve(run.metrics, key)) for run in rlhf_runs(runs)]) for key, title in CURVES]
    panels = [(key, title, [(run, xy) for run, xy in lines if xy[0]]) for key, title, lines in panels]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=[p[1] for p in panels],
                        vertical_spacing=0.12)
    for row, (key, _, lines) in enumerate(panels, start=1):
        for run, (steps, values) in lines:
            name = esc_plot(run.name) + (f" (reward model accuracy {acc:.0%})" if key == "reward" and
                                         (acc := reward_model_accuracy(run)) is not None else "")
            fig.add_trace(go.Scatter(
                name=name if key == "reward" else f"{esc_plot(run.name)} KL", x=steps, y=values,
                mode="lines+markers", marker={"size": 4}, legendgroup=esc_plot(run.name),
                hovertemplate=f"{esc_plot(run.name)}<br>step %{{x}}<br>{key} %{{y:.4f}}<extra></extra>",
            ), row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    apply_style(fig, height=340 * len(panels))
    return fig


def reward_model_accuracy(run: LoadedRun) -> float | None:
    return finite(_rlhf(run).get("reward_model_accuracy"))


def summary_rows(runs: list[LoadedRun]) -> list[tuple[str, ...]]:
    """One row per RLHF run: algorithm, reward-model accuracy, reward and KL windows, held-out check."""
    rows = []
    for run in rlhf_runs(runs):
        info = _rlhf(run)
        rm = info.get("stages", {}).get("reward_model", {})
        held = info.get("held_out") or {}
        rows.append((
            run.name,
            str(info.get("algorithm", "?")),
            _acc(reward_model_accuracy(run), rm.get("pairs")),
            _window(info.get("reward")),
            _window(info.get("kl")),
            _held(held),
        ))
    return rows


def _rlhf(run: LoadedRun) -> dict[str, Any]:
    extra = run.record.extra or {}
    value = extra.get("rlhf")
    return value if isinstance(value, dict) else {}


def _acc(value: float | None, pairs: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" + (f" of {pairs} held-out pairs" if isinstance(pairs, int) else "")


def _window(value: Any) -> str:
    if not isinstance(value, dict) or finite(value.get("first")) is None or finite(value.get("last")) is None:
        return "n/a"
    return f"{value['first']:.3g} → {value['last']:.3g}"


def _held(held: dict[str, Any]) -> str:
    policy, reference = finite(held.get("policy")), finite(held.get("reference"))
    if policy is None:
        return "n/a"
    if reference is None:
        return f"policy {policy:.3g}"
    share = finite(held.get("improved_share"))
    return (f"{reference:.3g} → {policy:.3g} on {held.get('prompts', '?')} prompts"
            + (f" ({share:.0%} improved)" if share is not None else ""))
