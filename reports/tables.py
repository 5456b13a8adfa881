"""HTML tables for the report: scorecard, examples, data profile, candidates, environment.

Every cell goes through `esc`; the functions return HTML fragments that are safe to
insert verbatim into the page.  Long texts are shortened (with an ellipsis) so that a
stray 100 kB completion cannot swamp the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reports.inputs import ReportInputs
from reports.outcomes import Change
from reports.text import esc, fmt_duration, fmt_gib, fmt_signed, fmt_usd, verdict_label
from reports.views import AdviceView

MAX_CELL = 600
MAX_EXAMPLES = 8


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], cls: str = "") -> str:
    """A <table>; every header and cell is escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def shorten(text: Any, limit: int = MAX_CELL) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _score(value: float, unit: str) -> str:
    return f"{value * 100:.1f}%" if unit == "pp" else f"{value:.4g}"


def scorecard_table(items: list[Change]) -> str:
    """eval_notes §4.1: base, variant, Δ, paired 95% CI, n, verdict per run and task."""
    rows = [
        (
            c.run, c.task, c.kind, c.metric, _score(c.base, c.unit), _score(c.score, c.unit),
            fmt_signed(c.diff, c.unit, 2), f"[{c.low:+.2f}, {c.high:+.2f}]", c.n,
            "" if c.p_value is None else f"{c.p_value:.3g}", verdict_label(c.verdict),
        )
        for c in items
    ]
    return table(("run", "task", "kind", "metric", "base", "tuned", "Δ", "95% interval", "n", "p", "verdict"), rows, "scorecard")


PROMPT_KEYS = ("prompt", "input", "question")
REFERENCE_KEYS = ("reference", "target", "expected", "answer")
META_KEYS = {"task", "doc_id", "id", "kind", "metric", *PROMPT_KEYS, *REFERENCE_KEYS}


def example_outputs(example: dict[str, Any]) -> dict[str, str]:
    """Variant name -> output text, from either {"outputs": {...}} or flat variant keys.

    Accepted shapes: {"prompt", "base", "<run>": text, ...}, {"prompt", "base",
    "tuned": {"<run>": text}} and {"prompt", "outputs": {"base": ..., "<run>": ...}}.
    """
    outputs: dict[str, str] = {}
    nested = example.get("outputs")
    if isinstance(nested, dict):
        outputs.update({str(k): str(v) for k, v in nested.items()})
    for key, value in example.items():
        if key in META_KEYS or key == "outputs":
            continue
        if key == "tuned" and isinstance(value, dict):
            outputs.update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, str):
            outputs[key] = value
    return outputs


def examples_table(examples: list[dict[str, Any]], limit: int = MAX_EXAMPLES) -> str:
    shown = [e for e in examples if isinstance(e, dict)][:limit]
    variants: list[str] = []
    for example in shown:
        for name in example_outputs(example):
            if name not in variants:
                variants.append(name)
    variants.sort(key=lambda v: v != "base")  # base first, the rest in order of appearance
    rows = []
    for example in shown:
        outputs = example_outputs(example)
        prompt = next((example[k] for k in PROMPT_KEYS if k in example), "")
        reference = next((example[k] for k in REFERENCE_KEYS if k in example), "")
        cells = [_output_cell(outputs, v) for v in variants]
        rows.append([example.get("task", ""), shorten(prompt), shorten(reference), *cells])
    return table(("task", "prompt", "reference", *variants), rows, "examples")


def _output_cell(outputs: dict[str, str], variant: str) -> str:
    """The variant's output; an empty generation is said, not shown as a blank cell."""
    if variant not in outputs:
        return ""
    return shorten(outputs[variant]) if outputs[variant].strip() else "(empty output)"


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            rows += _flatten(value, name + ".")
        elif isinstance(value, list):
            if not value:
                rows.append((name, "none"))
            elif all(not isinstance(v, dict | list) for v in value):
                rows.append((name, ", ".join(str(v) for v in value[:10]) + (" …" if len(value) > 10 else "")))
            else:
                rows.append((name, f"{len(value)} items"))
        elif isinstance(value, dict):
            rows.append((name, ", ".join(f"{k}={v}" for k, v in list(value.items())[:10])))
        else:
            rows.append((name, value))
    return rows


def data_profile_html(data: dict[str, Any]) -> str:
    """The advice's data profile: warnings first (they decide what to do), the per-method
    data verdicts, then every other number as field/value rows."""
    warnings = [p for key in ("warnings", "problems") if isinstance(data.get(key), list) for p in data[key]]
    html = ""
    if warnings:
        items = (shorten(w.get("message", w) if isinstance(w, dict) else w, 300) for w in warnings)
        html += '<ul class="problems">' + "".join(f"<li>{esc(w)}</li>" for w in items) + "</ul>"
    verdicts = data.get("verdicts")
    if isinstance(verdicts, dict) and verdicts:
        rows = []
        for method, value in verdicts.items():
            if isinstance(value, dict):
                rows.append((method, value.get("verdict", ""), shorten(value.get("reason", ""), 300)))
            else:
                rows.append((method, value, ""))
        html += table(("method", "data verdict", "why"), rows, "verdicts")
    shown = {"schema", "verdicts", *(k for k in ("warnings", "problems") if isinstance(data.get(k), list))}
    rest = {k: v for k, v in data.items() if k not in shown}
    return html + table(("field", "value"), ((k, shorten(v, 300)) for k, v in _flatten(rest)), "kv")


def reasons_html(reasons: list[str]) -> str:
    return "<ol>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ol>" if reasons else ""


def candidates_table(advice: AdviceView) -> str:
    rows = [
        (
            c.method + (" (recommended)" if c.method == advice.method else ""),
            c.verdict or "", c.hardware or "", c.gpus, fmt_gib(c.total_gib),
            {True: "yes", False: "no", None: "?"}[c.fits],
            fmt_duration(c.time_hours * 3600 if c.time_hours is not None else None), fmt_usd(c.cost_usd),
        )
        for c in advice.candidates
    ]
    return table(("method", "verdict", "hardware", "GPUs", "memory/device", "fits", "time", "cost"), rows, "candidates")


def runs_table(inputs: ReportInputs) -> str:
    rows = []
    for run in inputs.runs:
        rec = run.record
        device = (rec.peak_memory.device if rec.peak_memory else None) or rec.hardware.get("device", "")
        rows.append((
            rec.name, rec.method, rec.status, shorten(rec.base_model, 120), rec.seed, rec.steps,
            f"{rec.train_tokens:,}", "" if rec.tokens_per_s is None else f"{rec.tokens_per_s:,.0f}",
            device, rec.started_at or "", run.tunewise_version or "", shorten(rec.error or "", 300),
        ))
    return table(
        ("run", "method", "status", "base model", "seed", "steps", "tokens", "tokens/s", "device", "started", "tunewise", "error"),
        rows, "runs",
    )


def versions_table(inputs: ReportInputs) -> str:
    """Package versions, one column per run (and the eval), so mismatches stand out."""
    sources = [(run.name, run.record.versions) for run in inputs.runs]
    if inputs.eval is not None:
        sources.append(("eval", inputs.eval.versions))
    sources = [(name, v) for name, v in sources if v]
    if not sources:
        return ""
    packages = sorted({p for _, versions in sources for p in versions})
    rows = [(p, *(versions.get(p, "") for _, versions in sources)) for p in packages]
    return table(("package", *(name for name, _ in sources)), rows, "versions")


def eval_settings_table(inputs: ReportInputs) -> str:
    if inputs.eval is None:
        return ""
    s = inputs.eval.settings
    rows = [
        ("base model", shorten(inputs.eval.base_model, 200)), ("batch size", s.batch_size), ("dtype", s.dtype),
        ("limit", "none (full tasks)" if s.limit is None else s.limit), ("few-shot", "task default" if s.num_fewshot is None else s.num_fewshot),
        ("device", s.device), ("bootstrap iterations", s.bootstrap_iters), ("seed", s.seed),
        ("chat template", s.apply_chat_template), ("quick mode", inputs.eval.quick),
        ("created", inputs.eval.created_at or ""), ("tunewise", inputs.eval_version or ""),
    ]
    return table(("setting", "value"), rows, "kv")
