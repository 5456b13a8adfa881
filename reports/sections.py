"""The report's content: one Section per question a stakeholder asks, in reading order.

Each section has a figure (plotly) and/or a trusted HTML fragment (built with `esc`),
or a `missing` sentence saying which input would fill it.  `missing_notes` collects the
page-level "what is missing" list for partial input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reports import figures_quality, figures_resources, figures_rlhf, figures_training, tables
from reports.gpu_compare import Estimator, extra_gpu_estimates
from reports.headline import Headline, build_headline
from reports.inputs import ReportInputs
from reports.outcomes import changes, run_outcomes
from reports.views import EstimateView

NEEDS_EVAL = "Needs eval.json: run `tunewise eval RUN_DIRS --domain HELD_OUT.jsonl` and pass its eval.json."
NEEDS_ADVICE = "Needs the advice JSON: `tunewise advise ... --json > advice.json`, then `--advice advice.json`."


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""  # plain text
    figure: Any = None  # plotly Figure
    body_html: str = ""  # trusted HTML (every user string already escaped)
    missing: str | None = None  # plain text


@dataclass
class ReportContent:
    headline: Headline
    sections: list[Section]
    missing: list[str] = field(default_factory=list)


def build_content(inputs: ReportInputs, *, estimator: Estimator | None = None, gpu_names: list[str] | None = None) -> ReportContent:
    outcomes = run_outcomes(inputs.eval) if inputs.eval else []
    items = changes(inputs.eval) if inputs.eval else []
    missing = list(inputs.notes)
    sections = [
        *_quality_sections(inputs, outcomes, items),
        _memory_section(inputs, missing),
        _measured_section(inputs),
        _cost_section(inputs, missing, estimator, gpu_names),
        _training_section(inputs),
        *_rlhf_sections(inputs),
        _advice_section(inputs),
        _environment_section(inputs),
    ]
    return ReportContent(build_headline(inputs, outcomes), sections, _missing_notes(inputs, outcomes) + missing)


def _quality_sections(inputs: ReportInputs, outcomes, items) -> list[Section]:
    no_eval = NEEDS_EVAL if inputs.eval is None else None
    scorecard = Section(
        "scorecard", "Scorecard: each run vs the base model",
        "Paired per-example differences with 95% intervals; 'inconclusive' means the interval includes zero.",
        body_html=tables.scorecard_table(items) if items else "",
        missing=no_eval or (None if items else "eval.json holds no run-vs-base comparisons."),
    )
    scatter = figures_quality.gain_forgetting_figure(outcomes)
    partial = [o.run for o in outcomes if o.domain is None or o.worst_retention is None]
    gain = Section(
        "gain-forgetting", "Domain gain vs forgetting",
        "Each run is a point: right = better on your domain, down = worse at general skills "
        "(its worst retention task). The base model is the origin; bars are paired 95% intervals.",
        figure=scatter,
        missing=no_eval or (f"Not plotted (needs both a domain and a retention comparison): {', '.join(partial)}." if partial else None),
    )
    forest = Section(
        "forest", "Per-task differences (forest plot)",
        "Every run and task: the difference to the base with its paired 95% interval, coloured by verdict.",
        figure=figures_quality.forest_figure(items), missing=no_eval,
    )
    examples = inputs.eval.examples if inputs.eval else []
    example_section = Section(
        "examples", "Example prompts: base vs tuned",
        "A few held-out prompts with the base model's and each run's output.",
        body_html=tables.examples_table(examples) if examples else "",
        missing=no_eval or (None if examples else "eval.json holds no example outputs."),
    )
    return [scorecard, gain, forest, example_section]


def _memory_bars(inputs: ReportInputs, missing: list[str]) -> tuple[list[tuple[str, EstimateView]], str]:
    if inputs.advice and inputs.advice.candidates:
        return [(c.method, c) for c in inputs.advice.candidates], "the advisor's estimate per method"
    planned = [(f"{r.name} ({r.record.method})", r.estimate) for r in inputs.runs if r.estimate]
    hardware = Counter(e.hardware for _, e in planned)
    if len(hardware) > 1:
        chosen = hardware.most_common(1)[0][0]
        missing.append(f"Run estimates are for several GPUs; the memory chart shows those for {chosen}.")
        planned = [(label, e) for label, e in planned if e.hardware == chosen]
    return planned, "each run's planned estimate (no advice given)"


def _memory_section(inputs: ReportInputs, missing: list[str]) -> Section:
    bars, source = _memory_bars(inputs, missing)
    capacity = next((e.hardware_memory_gib for _, e in bars if e.hardware_memory_gib is not None), None)
    hardware = next((e.hardware for _, e in bars if e.hardware), None)
    figure = figures_resources.memory_breakdown_figure(bars, capacity, hardware)
    return Section(
        "memory", "Memory per device, by method",
        f"Stacked parts of {source}; the dashed line is the GPU's memory. A bar above it does not fit.",
        figure=figure,
        missing=None if figure else "No estimate with a memory breakdown: " + NEEDS_ADVICE,
    )


def _measured_section(inputs: ReportInputs) -> Section:
    rows = figures_resources.measured_rows(inputs.runs)
    notes = [f"{r.run}: {r.note}" for r in rows if r.note]
    figure = figures_resources.estimate_vs_measured_figure(rows)
    return Section(
        "measured", "Estimate vs measured (peak memory, time)",
        "How far to trust the advisor: the ratio above each measured bar is measured ÷ estimated."
        + (" Notes: " + "; ".join(notes) + "." if notes else ""),
        figure=figure,
        missing=None if figure else "No run folders with an estimate or measurements were given.",
    )


def _cost_section(inputs, missing: list[str], estimator, gpu_names) -> Section:
    estimates = list(inputs.advice.candidates) if inputs.advice else []
    extra = []
    if inputs.advice:
        extra, note = extra_gpu_estimates(inputs.advice, estimator=estimator, gpu_names=gpu_names)
        estimates += extra
        if note:
            missing.append(note)
    others = sorted({e.hardware or "?" for e in extra})
    figure = figures_resources.cost_time_figure(estimates)
    empty = figures_resources.unusable(estimates)
    return Section(
        "cost", "Cost and time per method across GPUs",
        "Estimated for the planned number of training tokens."
        + (f" {', '.join(others)}: re-estimated by the advisor with the advice's settings, or at "
           "micro-batch 1 (same global batch) where those do not fit." if others else "")
        + (" Left empty: " + "; ".join(empty) + "." if empty else ""),
        figure=figure,
        missing=None if figure else NEEDS_ADVICE,
    )


def _training_section(inputs: ReportInputs) -> Section:
    figure = figures_training.loss_figure(inputs.runs)
    return Section(
        "training", "Training curves",
        "Loss per logged step (dashed with an X: a run that did not complete); DPO runs add the reward margin.",
        figure=figure,
        missing=None if figure else "No run logged a training loss (metrics.jsonl).",
    )


def _rlhf_sections(inputs: ReportInputs) -> list[Section]:
    """RLHF runs only: reward curve, KL to the reference, reward-model accuracy (none otherwise)."""
    if not figures_rlhf.rlhf_runs(inputs.runs):
        return []
    figure = figures_rlhf.rlhf_figure(inputs.runs)
    rows = figures_rlhf.summary_rows(inputs.runs)
    body = tables.table(("run", "algorithm", "reward model: held-out pairs ranked right",
                         "reward (first → last quarter)", "KL to reference (first → last quarter)",
                         "held-out prompts, greedy: reward reference → policy"), rows, "rlhf")
    return [Section(
        "rlhf", "RLHF: reward, KL and the reward model",
        "The policy should raise the reward model's score while its KL to the reference stays small; a reward "
        "that climbs while the KL explodes (or answers collapse) is the policy exploiting the reward model. The "
        "reward model is only as good as its held-out accuracy.",
        figure=figure, body_html=body,
        missing=None if figure else "The RLHF runs logged no reward or KL (metrics.jsonl).",
    )]


def _advice_section(inputs: ReportInputs) -> Section:
    advice = inputs.advice
    if advice is None:
        return Section("advice", "The advisor's reasoning and the data", missing=NEEDS_ADVICE)
    body = ""
    if advice.reasons:
        body += "<h3>Why " + tables.esc(advice.method or "this method") + "</h3>" + tables.reasons_html(advice.reasons)
    body += tables.reasons_html(advice.notes)
    if advice.derivations:
        rows = [(d.get("field", ""), d.get("value", ""), d.get("reason", "")) for d in advice.derivations]
        body += "<h3>How the settings were chosen</h3>" + tables.table(("setting", "value", "why"), rows, "derivations")
    if advice.candidates:
        body += "<h3>Every method considered</h3>" + tables.candidates_table(advice)
    if advice.data:
        body += "<h3>Data profile</h3>" + tables.data_profile_html(advice.data)
    return Section(
        "advice", "The advisor's reasoning and the data", body_html=body,
        missing=None if advice.data else "The advice holds no data profile.",
    )


def _environment_section(inputs: ReportInputs) -> Section:
    body = ""
    if inputs.runs:
        body += "<h3>Runs</h3>" + tables.runs_table(inputs)
    if inputs.eval is not None:
        body += "<h3>Evaluation settings</h3>" + tables.eval_settings_table(inputs)
    versions = tables.versions_table(inputs)
    if versions:
        body += "<h3>Package versions</h3>" + versions
    return Section("environment", "Appendix: environment and versions", body_html=body, missing=None if body else "Nothing recorded.")


def _missing_notes(inputs: ReportInputs, outcomes) -> list[str]:
    notes = []
    if not inputs.runs:
        notes.append("No run folders: training curves and estimate-vs-measured are not shown.")
    if inputs.eval is None:
        notes.append("No evaluation yet: domain gain, forgetting, per-task differences and examples are not shown. " + NEEDS_EVAL)
    else:
        evaluated = {o.run for o in outcomes}
        notes += [f"Run {r.name} is not in eval.json (not evaluated yet)." for r in inputs.runs if r.name not in evaluated]
        if inputs.eval.quick:
            limit = inputs.eval.settings.limit
            notes.append(f"The evaluation ran in quick mode (limit {limit} per task): treat differences as indicative only.")
        notes += [f"Eval warning: {w}" for w in inputs.eval.warnings]
    if inputs.advice is None:
        notes.append("No advice: the recommendation cannot be checked and costs across GPUs are not shown. " + NEEDS_ADVICE)
    for run in inputs.runs:
        rec = run.record
        if rec.status != "completed":
            notes.append(f"Run {rec.name} {rec.status}" + (f": {rec.error}" if rec.error else "."))
        if rec.peak_memory is None:
            notes.append(f"Run {rec.name} recorded no peak memory.")
        if run.estimate is None:
            notes.append(f"Run {rec.name} carries no estimate, so it cannot be compared with one.")
        if not run.metrics and rec.method != "prompt":  # prompting trains nothing
            notes.append(f"Run {rec.name} has no metrics.jsonl rows (no training curve).")
    return notes
