"""Find and load what a report is made of: run folders, eval.json and the advice JSON.

`tunewise report PATHS...` accepts, in any mix:
  * a run folder (holds `record.json`, schema tunewise/run/v1),
  * a folder holding run folders (e.g. `runs/`, or a project folder with `runs/` and
    `eval/`), searched up to three levels down; `eval.json` / `advice.json` found on the
    way are picked up too,
  * a JSON file, dispatched on its schema id (run, eval or advice).
`--eval` and `--advice` name those files explicitly and win over discovered ones.

Schema ids are checked strictly (a wrong id is an error naming the file); optional parts
may be missing and are reported in the page's "what is missing" note instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.views import AdviceView, EstimateView, parse_advice, parse_estimate
from tunewise.errors import InputError
from tunewise.records import EvalRecord, RunRecord, load_eval_record, load_run_record
from tunewise.schema import read_json, schema_id

EVAL_NAMES = ("eval.json",)
ADVICE_NAMES = ("advice.json",)
MAX_DEPTH = 3  # e.g. out/ -> runs/ -> lora/ (record.json)


@dataclass
class LoadedRun:
    """A run folder: its record, its per-step metrics and its planned estimate."""

    dir: Path
    record: RunRecord
    metrics: list[dict[str, Any]] = field(default_factory=list)
    estimate: EstimateView | None = None
    tunewise_version: str | None = None

    @property
    def name(self) -> str:
        return self.record.name


@dataclass
class ReportInputs:
    runs: list[LoadedRun] = field(default_factory=list)
    eval: EvalRecord | None = None
    eval_path: Path | None = None
    eval_version: str | None = None
    advice: AdviceView | None = None
    notes: list[str] = field(default_factory=list)  # problems met while reading


def collect_inputs(
    paths: Iterable[str | Path],
    *,
    advice: str | Path | None = None,
    eval_path: str | Path | None = None,
) -> ReportInputs:
    """Load everything named by `paths` (see the module docstring)."""
    found = _Found()
    for path in paths:
        found.add(Path(path))
    inputs = ReportInputs()
    seen: set[Path] = set()
    for run_dir in found.runs:
        key = run_dir.resolve()
        if key not in seen:
            seen.add(key)
            inputs.runs.append(load_run(run_dir, inputs.notes))
    _note_duplicate_names(inputs)
    eval_file = Path(eval_path) if eval_path else _single(found.evals, "eval.json", "--eval")
    if eval_file is not None:
        eval_file = eval_file / "eval.json" if eval_file.is_dir() else eval_file
        inputs.eval = load_eval_record(eval_file)
        inputs.eval_path = eval_file
        inputs.eval_version = _version_of(eval_file)
    advice_file = Path(advice) if advice else _single(found.advices, "advice JSON", "--advice")
    if advice_file is not None:
        inputs.advice = parse_advice(read_json(advice_file), advice_file)
    return inputs


class _Found:
    """Paths sorted into run folders, eval files and advice files."""

    def __init__(self) -> None:
        self.runs: list[Path] = []
        self.evals: list[Path] = []
        self.advices: list[Path] = []

    def add(self, path: Path) -> None:
        if not path.exists():
            raise InputError("no such file or folder", path=path)
        if path.is_file():
            self._add_file(path)
        elif (path / "record.json").is_file():
            self.runs.append(path)
        else:
            self._add_folder(path)

    def _add_file(self, path: Path) -> None:
        kind = _schema_kind(path)
        if kind == "run":
            self.runs.append(path.parent)
        elif kind == "eval":
            self.evals.append(path)
        elif kind == "advice":
            self.advices.append(path)

    def _add_folder(self, folder: Path) -> None:
        before = len(self.runs) + len(self.evals) + len(self.advices)
        for child in _walk(folder, MAX_DEPTH):
            if child != folder and (child / "record.json").is_file():
                self.runs.append(child)
                continue
            self.evals += [child / n for n in EVAL_NAMES if (child / n).is_file()]
            self.advices += [child / n for n in ADVICE_NAMES if (child / n).is_file()]
        if len(self.runs) + len(self.evals) + len(self.advices) == before:
            raise InputError("found no run folders (record.json), eval.json or advice.json", path=folder)


def _walk(folder: Path, depth: int) -> list[Path]:
    """`folder` and its sub-folders down to `depth` levels, sorted, without descending
    into run folders (their adapter/ and model/ hold no records) or hidden folders."""
    found = [folder]
    if depth == 0 or (folder / "record.json").is_file():
        return found
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += _walk(child, depth - 1)
    return found


def _schema_kind(path: Path) -> str:
    raw = read_json(path)
    found = raw.get("schema") if isinstance(raw, dict) else None
    for kind in ("run", "eval", "advice"):
        if found == schema_id(kind):
            return kind
    raise InputError(
        f"unsupported schema {found!r}; a report reads tunewise/run/v1, tunewise/eval/v1 "
        "or tunewise/advice/v1",
        path=path,
        field="schema",
    )


def _single(paths: list[Path], what: str, flag: str) -> Path | None:
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if len(unique) > 1:
        listed = ", ".join(str(p) for p in unique)
        raise InputError(f"found several {what} files ({listed}); choose one with {flag}")
    return unique[0] if unique else None


def _version_of(path: Path) -> str | None:
    raw = read_json(path)
    version = raw.get("tunewise_version") if isinstance(raw, dict) else None
    return str(version) if version is not None else None


def load_run(run_dir: Path, notes: list[str]) -> LoadedRun:
    """Load one run folder; unreadable metrics lines are skipped and noted, not fatal.

    A run killed mid-write may leave a truncated last line in metrics.jsonl; the report
    must still show the rest of the curve (and say a line was skipped).
    """
    record = load_run_record(run_dir)
    estimate = None
    if record.estimate:
        estimate = parse_estimate(record.estimate, run_dir / "record.json", "estimate.")
    loaded = LoadedRun(dir=run_dir, record=record, estimate=estimate, tunewise_version=_version_of(run_dir / "record.json"))
    metrics_rel = record.artifacts.get("metrics", "metrics.jsonl")
    metrics_path = run_dir / metrics_rel
    if metrics_path.is_file():
        loaded.metrics = read_metrics(metrics_path, notes, record.name)
    return loaded


def read_metrics(path: Path, notes: list[str], run_name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bad: list[int] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # truncated, too deep, or an absurd number
                bad.append(number)
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append(number)
    if bad:
        lines = ", ".join(str(n) for n in bad[:5]) + (" ..." if len(bad) > 5 else "")
        notes.append(f"Run {run_name}: skipped unreadable metrics.jsonl line(s) {lines}.")
    return rows


def _note_duplicate_names(inputs: ReportInputs) -> None:
    names = [run.name for run in inputs.runs]
    for name in sorted({n for n in names if names.count(n) > 1}):
        dirs = ", ".join(str(r.dir) for r in inputs.runs if r.name == name)
        inputs.notes.append(f"Several run folders are named {name!r} ({dirs}); eval results match by name.")
