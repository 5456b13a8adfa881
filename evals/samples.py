"""From lm-eval's result dict to TaskScores and per-example rows (pure Python).

Score, stderr, n, version, few-shot count and direction all come from lm-eval's own
output: `results[task]["<metric>,<filter>"]`, `"<metric>_stderr,<filter>"`,
`n-samples[task]["effective"]`, `versions`, `n-shot` and `higher_is_better`.

Per-example rows (one JSONL file per variant and task) keep what pairing needs
(doc_id, doc_hash, prompt_hash, score) plus what a reader wants to see (prompt, target,
response, and the choice log-likelihoods of multiple-choice items).  Tasks that are groups
(e.g. `mmlu`) pool their subtasks' rows with doc_id "<subtask>/<doc_id>"; the pooled mean
equals lm-eval's size-weighted group score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.tasks import TaskSpec
from tunewise.atomic import atomic_write_text
from tunewise.records import TaskScore

# Headline metric of well-known lm-eval tasks whose first listed metric is not the usual
# one (reference/eval_notes.md section 2.6: HellaSwag and ARC report acc_norm).
HEADLINE = {"hellaswag": "acc_norm", "arc_easy": "acc_norm", "arc_challenge": "acc_norm"}
TEXT_LIMIT = 2000  # characters of prompt/response kept per row


@dataclass
class TaskResult:
    score: TaskScore
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def extract(results: dict[str, Any], specs: list[TaskSpec]) -> list[TaskResult]:
    """One TaskResult per requested task, in the order of `specs`."""
    return [_extract_one(results, spec) for spec in specs]


def _extract_one(results: dict[str, Any], spec: TaskSpec) -> TaskResult:
    name = spec.name
    row = results["results"][name]
    metric, filt = _headline(row, spec, results)
    leaves = _leaves(results, name)
    stderr = row.get(f"{metric}_stderr,{filt}")
    hib = results.get("higher_is_better", {}).get(name, {}).get(metric)
    if hib is None:  # groups may not list it; their subtasks do
        hib = results.get("higher_is_better", {}).get(leaves[0], {}).get(metric, True)
    n_shot = results.get("n-shot", {})
    score = TaskScore(
        task=name,
        metric=metric,
        score=float(row[f"{metric},{filt}"]),
        stderr=_float_or_none(stderr),
        n=sum(int(results["n-samples"][leaf]["effective"]) for leaf in leaves),
        version=str(results.get("versions", {}).get(name, results["versions"].get(leaves[0]))),
        num_fewshot=int(n_shot.get(name, n_shot.get(leaves[0], 0)) or 0),
        higher_is_better=bool(hib),
        kind=spec.kind,
    )
    result = TaskResult(score=score)
    samples = results.get("samples") or {}
    for leaf in leaves:
        for sample in samples.get(leaf, []):
            if sample.get("filter") == filt and metric in sample:
                result.rows.append(sample_row(sample, metric, prefix=f"{leaf}/" if len(leaves) > 1 else ""))
    if any(r["score"] is None for r in result.rows):
        result.warnings.append(f"{name}: metric {metric} is not a per-example mean; no paired comparison")
    return result


def _headline(row: dict[str, Any], spec: TaskSpec, results: dict[str, Any]) -> tuple[str, str]:
    """(metric, filter) of the score to report: the spec's, a known default, or the first."""
    keys = [k for k in row if "," in k and not k.split(",")[0].endswith("_stderr")]
    wanted = spec.metric or _config_metric(results, spec.name) or HEADLINE.get(spec.name)
    wanted_filter = spec.filter if spec.metric else None  # generated tasks know their filter
    for key in keys:
        metric, filt = key.split(",", 1)
        if metric == wanted and wanted_filter in (None, filt):
            return metric, filt
    if not keys:
        raise ValueError(f"lm-eval returned no metric for {spec.name}")
    metric, filt = keys[0].split(",", 1)
    return metric, filt


def _config_metric(results: dict[str, Any], name: str) -> str | None:
    """A suite may name its headline metric in the task's metadata (`tunewise_metric`)."""
    metadata = (results.get("configs", {}).get(name) or {}).get("metadata") or {}
    return metadata.get("tunewise_metric") if isinstance(metadata, dict) else None


def _leaves(results: dict[str, Any], name: str) -> list[str]:
    subtasks = results.get("group_subtasks", {})
    if name not in subtasks or not subtasks[name]:
        return [name]
    leaves: list[str] = []
    for child in subtasks[name]:
        leaves.extend(_leaves(results, child))
    return leaves


def sample_row(sample: dict[str, Any], metric: str, prefix: str = "") -> dict[str, Any]:
    """The per-example record tunewise keeps from one lm-eval logged sample."""
    args = sample.get("arguments") or []
    resps = sample.get("filtered_resps") or []
    row: dict[str, Any] = {
        "doc_id": f"{prefix}{sample['doc_id']}" if prefix else sample["doc_id"],
        "doc_hash": sample.get("doc_hash"),
        "prompt_hash": sample.get("prompt_hash"),
        "target_hash": sample.get("target_hash"),
        "score": _float_or_none(sample.get(metric)),
        "prompt": _clip(_first_arg(args)),
    }
    if args and isinstance(args[0], list | tuple) and len(args[0]) == 2 and isinstance(args[0][1], str):
        # log-likelihood requests: one (context, continuation) per choice
        choices = [a[1] for a in args]
        lls = [float(r[0]) for r in resps]
        row["lls"] = lls
        row["response"] = _clip(choices[lls.index(max(lls))].strip()) if lls else None
        row["target"] = _clip(_choice_target(sample.get("target"), choices))
    else:
        row["response"] = _clip(str(resps[0])) if resps else None
        row["target"] = _clip(str(sample.get("target")))
    return row


def _first_arg(args: list) -> str:
    if not args:
        return ""
    first = args[0]
    return str(first[0]) if isinstance(first, list | tuple) else str(first)


def _choice_target(target: Any, choices: list[str]) -> str:
    if isinstance(target, int) and 0 <= target < len(choices):
        return choices[target].strip()
    return str(target)


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= TEXT_LIMIT:
        return text
    return text[:TEXT_LIMIT] + "…"


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    return atomic_write_text(path, text)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
