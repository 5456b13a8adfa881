"""lm-eval task configs generated from a user's held-out data (YAML over local JSONL).

For each held-out file, one task per kind found in it (see evals/eval_data.py):

    tw_domain_<file>_mc    multiple choice by log-likelihood        metric acc (acc_norm too)
    tw_domain_<file>_em    greedy generation, exact match           metric exact_match
    tw_pref_<file>         chosen vs rejected by log-likelihood     metric acc = preference rate

The preference task is an lm-eval `multiple_choice` task with choices [chosen, rejected]
and answer 0, so `acc` is the fraction of pairs where
log p(chosen | prompt) > log p(rejected | prompt)  (summed token log-probabilities).

Traps handled here (reference: eval_notes.md sections 1.1, 1.3, 1.6):
- data paths in the YAML are absolute (lm-eval does not document relative resolution);
- names carry the `tw_` prefix so they never collide with lm-eval's built-in tasks;
- `metadata.version` is a hash of the config and the data, so results on different data
  (or a different prompt layout) never compare;
- with K few-shot examples, the first K items become a separate `dev` split read with the
  `first_n` sampler, and are removed from the evaluated `test` split: no item can ever be
  shown its own answer (the single-file fallback of eval_notes 1.3).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.eval_data import EvalItems, Render, plain_render, read_eval_items
from tunewise.atomic import atomic_write_text, atomic_write_yaml
from tunewise.errors import InputError

PREFIX = "tw"
LAYOUT_VERSION = 1  # bump when the generated config layout changes: old versions then never compare
MAX_GEN_TOKS = 256
CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task tunewise scores: its name, headline metric and provenance."""

    name: str
    kind: str  # "domain" | "preference" | "retention"
    metric: str  # headline metric, e.g. "acc", "exact_match"
    filter: str = "none"  # lm-eval filter name of the headline metric ("none", "strip", ...)
    version: str | None = None  # metadata.version (generated tasks: content hash)
    n_docs: int | None = None  # evaluated documents before --limit
    source: str | None = None  # the user's data file
    yaml_path: str | None = None
    output_type: str | None = None


def build_data_tasks(
    path: str | Path,
    out_dir: str | Path,
    *,
    preference: bool = False,
    num_fewshot: int = 0,
    render: Render = plain_render,
    taken: set[str] | None = None,
    count_tokens: CountTokens | None = None,
) -> list[TaskSpec]:
    """Read `path`, write one YAML + JSONL per task kind under `out_dir`, return the specs.

    `taken` collects names already used in this evaluation (two files with the same stem
    get distinct names).  `count_tokens` (the base tokenizer) bounds generation length by
    the longest answer in tokens; without it, by its UTF-8 length.
    """
    items = read_eval_items(path, render=render, preference=preference)
    taken = taken if taken is not None else set()
    specs = []
    for kind in items.kinds():
        name = _unique_name(_base_name(items.path, kind), taken)
        rows = getattr(items, kind)
        specs.append(_write_task(name, kind, items, rows, Path(out_dir), (num_fewshot, count_tokens)))
    return specs


def _base_name(path: Path, kind: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", path.stem.lower()).strip("_")[:40] or "data"
    return {
        "multiple_choice": f"{PREFIX}_domain_{slug}_mc",
        "exact_match": f"{PREFIX}_domain_{slug}_em",
        "preference": f"{PREFIX}_pref_{slug}",
    }[kind]


def _unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _write_task(name: str, kind: str, items: EvalItems, rows: list[dict], out_dir: Path,
                shots_and_counter: tuple[int, CountTokens | None]) -> TaskSpec:
    k, count_tokens = shots_and_counter
    if k < 0:
        raise InputError("must be >= 0", field="num_fewshot")
    dev, test = rows[:k], rows[k:]
    if not test:
        raise InputError(
            f"{len(rows)} examples leave nothing to evaluate after {k} few-shot examples",
            path=items.path, field="num_fewshot",
        )
    folder = (out_dir / name).resolve()
    config = task_config(name, kind, test, has_dev=bool(dev), count_tokens=count_tokens)
    if dev:
        config["num_fewshot"] = k  # the task carries its own shot count: the dev split is sized for it
    version = content_version(config, test, dev)
    config["metadata"] = {"version": version, "source": items.path.name}
    files = {"test": folder / "test.jsonl"} | ({"dev": folder / "dev.jsonl"} if dev else {})
    for split, file in files.items():
        atomic_write_text(file, _jsonl(test if split == "test" else dev))
    config["dataset_kwargs"] = {"data_files": {split: str(file) for split, file in files.items()}}
    yaml_path = atomic_write_yaml(out_dir / f"{name}.yaml", config)
    return TaskSpec(
        name=name,
        kind="preference" if kind == "preference" else "domain",
        metric=config["metric_list"][0]["metric"],
        filter=config["filter_list"][0]["name"] if "filter_list" in config else "none",
        version=version,
        n_docs=len(test),
        source=str(items.path),
        yaml_path=str(yaml_path),
        output_type=config["output_type"],
    )


def task_config(name: str, kind: str, test: list[dict], *, has_dev: bool,
                count_tokens: CountTokens | None = None) -> dict[str, Any]:
    """The lm-eval config of one generated task, without data paths and version."""
    config: dict[str, Any] = {
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "test_split": "test",
        "doc_to_text": "query",
        "target_delimiter": _target_delimiter(test),
        "fewshot_delimiter": "\n\n",
    }
    if has_dev:
        config["fewshot_split"] = "dev"
        config["fewshot_config"] = {"sampler": "first_n"}
    if kind == "exact_match":
        config |= {
            "output_type": "generate_until",
            "doc_to_target": "target",
            "generation_kwargs": _generation_kwargs(test, count_tokens),
            # Strip surrounding whitespace of the generation; targets are stored stripped.
            "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"},
                                                          {"function": "take_first"}]}],
            "metric_list": [_metric("exact_match")],
        }
    else:
        config |= {
            "output_type": "multiple_choice",
            "doc_to_choice": "choices",
            "doc_to_target": "gold",
            "metric_list": [_metric("acc"), _metric("acc_norm")],
        }
    return config


def _metric(name: str) -> dict[str, Any]:
    return {"metric": name, "aggregation": "mean", "higher_is_better": True}


def _target_delimiter(rows: list[dict]) -> str:
    """" " between prompt and answer, unless the data already carries the whitespace.

    Chat-rendered prompts end in a newline and trl concatenates prompt and completion
    directly, so adding a space there would score a text the model never saw.
    """
    if all(r["query"][-1:].isspace() for r in rows):
        return ""
    answers = [c for r in rows for c in r.get("choices", [r.get("target", "")])]
    if answers and all(a[:1].isspace() for a in answers):
        return ""
    return " "


def _generation_kwargs(rows: list[dict], count_tokens: CountTokens | None) -> dict[str, Any]:
    """Greedy decoding; stop at a blank line (or a newline when no target spans lines).

    max_gen_toks = longest answer + 16, in tokens of the base tokenizer (or in UTF-8 bytes,
    an upper bound for byte-level BPE): a correct answer fits, a rambling model stops soon.
    """
    size = count_tokens or (lambda text: len(text.encode("utf-8")))
    longest = max(size(r["target"]) for r in rows)
    multiline = any("\n" in r["target"] for r in rows)
    return {
        "until": ["\n\n"] if multiline else ["\n"],
        "do_sample": False,
        "temperature": 0.0,
        "max_gen_toks": min(MAX_GEN_TOKS, longest + 16),
    }


def content_version(config: dict[str, Any], test: list[dict], dev: list[dict]) -> str:
    """`tw<layout>-<sha256[:12]>` of the config and every item: different data never compares."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"layout": LAYOUT_VERSION, "config": config}, sort_keys=True).encode())
    for split, rows in (("test", test), ("dev", dev)):
        digest.update(split.encode())
        digest.update(_jsonl(rows).encode("utf-8"))
    return f"{PREFIX}{LAYOUT_VERSION}-{digest.hexdigest()[:12]}"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
