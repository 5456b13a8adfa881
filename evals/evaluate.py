"""`tunewise eval`: the base model and every run on the same tasks, compared per example.

    evaluate_runs(["runs/lora", "runs/full"], domain=["held_out.jsonl"], out="eval")

writes `<out>/eval.json` (EvalRecord, schema tunewise/eval/v1), the generated lm-eval tasks
under `<out>/tasks/` and per-example results under `<out>/samples/<variant>/<task>.jsonl`
(an earlier evaluation in `<out>` is replaced whole: evals/output.py).
Every variant is evaluated with one EvalSettings (batch size, dtype, limit, few-shot count,
seed, chat template), so every difference in the record compares like with like.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals import compare, harness
from evals.baseline import baseline_results, load_baseline
from evals.eval_data import content_render, plain_render
from evals.output import SAMPLES, prepare_output, write_output
from evals.retention import resolve_retention
from evals.samples import TaskResult, extract
from evals.tasks import TaskSpec, build_data_tasks
from evals.variants import BASE, Resolved, VariantSpec, check_weights, prompt_prefix, resolve_runs
from tunewise.errors import InputError
from tunewise.records import Comparison, EvalRecord, EvalSettings, Variant


@dataclass
class EvalOptions:
    """Everything `tunewise eval` takes; validated here, once."""

    run_dirs: list[str]
    domain: list[str] = field(default_factory=list)
    preference: list[str] = field(default_factory=list)
    retention: str | None = "builtin"  # builtin | none | suite name | lm-eval task names, comma-separated
    out: str = "eval"
    base: str | None = None
    limit: int | None = None
    batch_size: int = 8
    dtype: str | None = None  # default: bfloat16 on a bf16 GPU, else float32
    device: str | None = None  # default: cuda when available, else cpu
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    bootstrap_iters: int = 100_000  # lm-eval's default, so stderrs match its command line
    seed: int = 1234  # lm-eval's default few-shot seed
    examples: int = 3  # example prompts with base vs tuned generations for the report
    baseline: str | None = None  # an earlier eval.json (or its folder) whose base scores are reused

    def __post_init__(self) -> None:
        for name in ("batch_size", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise InputError("must be >= 0", field="num_fewshot")
        if self.dtype is not None and self.dtype not in harness.DTYPES:
            raise InputError(f"expected one of {', '.join(harness.DTYPES)}, got {self.dtype!r}", field="dtype")
        if self.examples < 0:
            raise InputError("must be >= 0", field="examples")
        if self.device is not None:
            harness.check_device_name(self.device)


def evaluate_runs(  # noqa: PLR0913 - the public keyword API mirrors the command line
    run_dirs: list[str | Path],
    *,
    domain: list[str | Path] | str | Path | None = None,
    preference: list[str | Path] | str | Path | None = None,
    retention: str | None = "builtin",
    out: str | Path = "eval",
    limit: int | None = None,
    batch_size: int = 8,
    dtype: str | None = None,
    num_fewshot: int | None = None,
    **more: Any,
) -> EvalRecord:
    """Evaluate the base model and each run; write and return the EvalRecord.

    `more`: base, device, apply_chat_template, bootstrap_iters, seed, examples, baseline
    (see EvalOptions).
    """
    options = EvalOptions(
        run_dirs=[str(d) for d in run_dirs], domain=_paths(domain), preference=_paths(preference),
        retention=retention, out=str(out), limit=limit, batch_size=batch_size, dtype=dtype,
        num_fewshot=num_fewshot, **more,
    )
    return evaluate(options)


def _paths(value) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str | Path) else [str(v) for v in value]


def evaluate(options: EvalOptions) -> EvalRecord:
    started = time.time()
    harness.ensure_offline()
    resolved = resolve_runs(options.run_dirs, options.base)
    out = Path(options.out)
    folder = prepare_output(out, [v.name for v in resolved.variants])
    device = harness.resolve_device(options.device)
    settings = EvalSettings(
        batch_size=options.batch_size, dtype=options.dtype or harness.default_dtype(device),
        limit=options.limit, num_fewshot=options.num_fewshot, device=device,
        bootstrap_iters=options.bootstrap_iters, seed=options.seed,
        apply_chat_template=options.apply_chat_template,
    )
    specs = _data_tasks(options, out / "tasks", resolved.base_model)
    retention = resolve_retention(options.retention)
    specs += retention.specs
    if not specs:
        raise InputError("nothing to evaluate: give --domain, --preference or --retention")
    manager = harness.task_manager([str((out / "tasks").resolve()), *retention.include_paths],
                                   include_defaults=retention.builtin)
    baseline = load_baseline(options.baseline, settings, resolved.base_model, specs) if options.baseline else None
    harness.check_tasks(manager, [s.name for s in specs], load=[s.name for s in retention.specs])
    examples, from_task = _example_items(specs, options.examples, options.limit)
    check_weights(resolved.variants, resolved.base_model)
    job = harness.HarnessJob(
        base_model=resolved.base_model, settings=settings, tasks=[s.name for s in specs],
        variants=[v for v in resolved.variants if not (baseline and v.name == BASE)],
        prompt_prefixes={v.name: prompt_prefix(v.prompt) for v in resolved.variants if v.prompt},
        example_prompts=[] if from_task else [e["prompt"] for e in examples],
        probe_text=examples[0]["prompt"] if examples else "",
    )
    outputs = harness.evaluate_variants(job, manager)
    results = {name: extract(output.results, specs) for name, output in outputs.items()}
    if baseline:
        results[BASE] = baseline_results(baseline, specs)
        outputs[BASE] = harness.VariantOutput(results={}, examples=_baseline_examples(baseline, examples))
    record = _record(resolved, settings, results, outputs)
    record.examples = _examples(examples, resolved.variants, outputs, results if from_task else None)
    record.wall_time_s = round(time.time() - started, 3)
    write_output(folder, record, _samples(results))
    return record


def _data_tasks(options: EvalOptions, tasks_dir: Path, base_model: str) -> list[TaskSpec]:
    """Generate the domain and preference tasks with the base tokenizer (chat template, lengths)."""
    tokenizer = _BaseTokenizer(base_model)
    taken: set[str] = set()
    # With --chat-template lm-eval applies the template itself; rendering here too would nest it.
    render = content_render if options.apply_chat_template else tokenizer.render
    common = dict(num_fewshot=options.num_fewshot or 0, render=render, taken=taken, count_tokens=tokenizer.count)
    specs: list[TaskSpec] = []
    for path in options.domain:
        specs += build_data_tasks(path, tasks_dir, **common)
    for path in options.preference:
        specs += build_data_tasks(path, tasks_dir, preference=True, **common)
    return specs


class _BaseTokenizer:
    """The base model's tokenizer, loaded on first use (bad data fails before any load)."""

    def __init__(self, base_model: str) -> None:
        self.base_model = base_model
        self._tok = None

    @property
    def tok(self):
        if self._tok is None:
            from tunewise import hub

            self._tok = hub.load_tokenizer(self.base_model, "base tokenizer")
        return self._tok

    def render(self, messages: list[dict[str, str]]) -> str:
        """messages -> prompt text with the base's chat template (plain `role: content` without one)."""
        if not getattr(self.tok, "chat_template", None):
            return plain_render(messages)
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])


def _record(resolved: Resolved, settings: EvalSettings, results: dict[str, list[TaskResult]],
            outputs: dict[str, harness.VariantOutput]) -> EvalRecord:
    record = EvalRecord(base_model=resolved.base_model, settings=settings, quick=settings.limit is not None,
                        warnings=list(resolved.warnings), versions=_versions(),
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    record.warnings += [
        f"{v.name}: QLoRA adapter evaluated unmerged on the {settings.dtype} base (not re-quantised to 4-bit), "
        "like every other adapter" for v in resolved.variants if v.method == "qlora" and v.adapter
    ]
    for spec in resolved.variants:
        variant = Variant(name=spec.name, method=spec.method, run_dir=spec.run_dir)
        for result in results[spec.name]:
            result.score.samples = f"{SAMPLES}/{spec.name}/{_samples_file(result)}"
            variant.scores.append(result.score)
            record.warnings += result.warnings if spec.name == BASE else []
        record.variants.append(variant)
        record.warnings += outputs[spec.name].warnings
    for spec in resolved.variants[1:]:
        comparisons, warnings = _compare_variant(spec, results[BASE], results[spec.name])
        record.comparisons += comparisons
        record.warnings += warnings
        if not any(w.startswith(f"{spec.name}:") for w in outputs[spec.name].warnings):
            record.warnings += _identical_outputs(spec, results[BASE], results[spec.name])
    return record


def _samples_file(result: TaskResult) -> str:
    return f"{result.score.task}.jsonl"


def _samples(results: dict[str, list[TaskResult]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per-example rows by variant and file name, for write_output."""
    return {name: {_samples_file(r): r.rows for r in task_results} for name, task_results in results.items()}


def _compare_variant(spec: VariantSpec, base: list[TaskResult], run: list[TaskResult]) -> tuple[list[Comparison], list[str]]:
    comparisons, warnings = [], []
    for base_result, run_result in zip(base, run, strict=True):
        if any(r["score"] is None for r in base_result.rows + run_result.rows):
            continue
        base_scores, run_scores, notes = compare.pair_rows(
            base_result.rows, run_result.rows, task=run_result.score.task, run=spec.name,
            check_prompt=spec.kind != "prompt",
        )
        warnings += notes
        comparisons.append(compare.compare_scores(spec.name, base_result.score, run_result.score,
                                                  base_scores, run_scores))
    return comparisons, warnings


def _identical_outputs(spec: VariantSpec, base: list[TaskResult], run: list[TaskResult]) -> list[str]:
    """A run whose every per-example output equals the base's was probably never applied."""
    def outputs(results: list[TaskResult]) -> list[Any]:
        return [(r["doc_id"], r.get("lls", r.get("response"))) for res in results for r in res.rows]

    same = outputs(base)
    if same and outputs(run) == same:
        return [f"{spec.name}: outputs identical to the base model's on all {len(same)} examples; "
                "is the run's model really different from the base?"]
    return []


def _example_items(specs: list[TaskSpec], count: int, limit: int | None) -> tuple[list[dict[str, Any]], bool]:
    """The first `count` items of a domain task: prompt and reference answer.

    An exact-match task is preferred: its logged generations are the examples, so no
    extra generation is run (the second value says so).
    """
    domain = [s for s in specs if s.kind == "domain" and s.yaml_path]
    generated = [s for s in domain if s.output_type == "generate_until"]
    if not domain or count == 0:
        return [], False
    spec = (generated or domain)[0]
    count = min(count, limit) if limit else count
    rows = []
    with open(Path(spec.yaml_path).with_suffix("") / "test.jsonl", encoding="utf-8") as handle:
        for doc_id, line in enumerate(handle):
            if len(rows) == count:
                break
            item = json.loads(line)
            reference = item.get("target", item["choices"][item["gold"]] if "choices" in item else None)
            rows.append({"task": spec.name, "doc_id": doc_id, "prompt": item["query"], "reference": reference})
    return rows, bool(generated)


def _examples(items: list[dict[str, Any]], variants: list[VariantSpec], outputs: dict[str, harness.VariantOutput],
              results: dict[str, list[TaskResult]] | None) -> list[dict[str, Any]]:
    """Each example with every variant's answer: from the task's logged generations, or generated."""
    def answer(name: str, i: int) -> str:
        if results is None:
            texts = outputs[name].examples
            return texts[i] if i < len(texts) else ""
        rows = next(r.rows for r in results[name] if r.score.task == items[i]["task"])
        return next((r["response"] or "" for r in rows if r["doc_id"] == items[i]["doc_id"]), "")

    return [item | {"outputs": {v.name: answer(v.name, i) for v in variants}} for i, item in enumerate(items)]


def _baseline_examples(baseline, items: list[dict[str, Any]]) -> list[str]:
    """The base's generations for the example prompts, when the earlier record has them."""
    earlier = {e.get("prompt"): (e.get("outputs") or {}).get(BASE) for e in baseline.record.examples}
    return [earlier.get(item["prompt"]) or "" for item in items]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tunewise", "lm_eval", "transformers", "torch", "peft", "datasets"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
