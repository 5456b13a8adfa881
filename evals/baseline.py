"""Reusing the base model's scores from an earlier eval.json (`tunewise eval --baseline DIR`).

A new run can then be compared with a base evaluated before, without evaluating the base
again -- but only when everything that changes scores is identical: the settings in
compare.COMPARABLE_SETTINGS, the base model, and every task's version and few-shot count.
Anything else is refused with one line: differences between records evaluated
differently are not differences between models (batch size and dtype alone move scores:
lm-eval issues #1645, #3055).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evals.compare import check_settings_comparable
from evals.samples import TaskResult, read_rows
from evals.tasks import TaskSpec
from evals.variants import BASE
from tunewise.errors import InputError
from tunewise.records import EvalRecord, EvalSettings, TaskScore, load_eval_record


@dataclass
class Baseline:
    path: Path  # the earlier eval.json
    record: EvalRecord
    scores: dict[str, TaskScore]  # task -> the base's score in that record


def load_baseline(path: str | Path, settings: EvalSettings, base_model: str, specs: list[TaskSpec]) -> Baseline:
    """Read and check an earlier record before any model is loaded."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    record = load_eval_record(path)
    check_settings_comparable(record.settings, settings, a_name=str(path), b_name="this evaluation")
    if record.base_model != base_model and not _same_path(record.base_model, base_model):
        raise InputError(f"baseline was evaluated on base model {record.base_model}, not {base_model}", path=path)
    base = next((v for v in record.variants if v.name == BASE), None)
    if base is None:
        raise InputError("baseline record has no base variant", path=path, field="variants")
    scores = {s.task: s for s in base.scores}
    for spec in specs:
        if spec.name not in scores:
            raise InputError(f"baseline has no base score for task {spec.name}; evaluate the base again",
                             path=path)
        if spec.version is not None and scores[spec.name].version != spec.version:
            raise InputError(
                f"cannot compare with the baseline: task {spec.name} version differs "
                f"({spec.version} now, {scores[spec.name].version} in the baseline): the data changed",
                path=path,
            )
    return Baseline(path=path, record=record, scores=scores)


def baseline_results(baseline: Baseline, specs: list[TaskSpec]) -> list[TaskResult]:
    """The base's TaskResults (score + per-example rows) for `specs`, from the earlier record."""
    results = []
    for spec in specs:
        score = baseline.scores[spec.name]
        if not score.samples:
            raise InputError(f"baseline has no per-example results for {spec.name}", path=baseline.path)
        rows_path = baseline.path.parent / score.samples
        if not rows_path.is_file():
            raise InputError("per-example results of the baseline are missing", path=rows_path)
        copy = TaskScore(**{**score.__dict__, "samples": None})
        results.append(TaskResult(score=copy, rows=read_rows(rows_path)))
    return results


def _same_path(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
