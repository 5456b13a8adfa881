"""The local run history: where finished runs are remembered, and how they are read back.

Two sources feed the calibration (advisor/calibration.py):

* the history index `$TUNEWISE_HOME/history.jsonl` (default `~/.cache/tunewise`): every
  completed `tunewise run` (and every `advise --probe`) appends one line, a summary of its
  `record.json` with the fields the calibration needs.  The line is self-contained, so a
  run folder that was deleted (a probe's temporary folder) still counts;
* run folders: `runs/*/record.json` in the current directory (automatically), or any
  folder / record.json / history file given with `--calibrate-from`.

`TUNEWISE_NO_HISTORY=1` turns off both writing and automatic reading (the test suite sets
it, so no test reads or writes a developer's history); `--no-history` turns off reading for
one command.  Entries are deduplicated by (record path, start time): a run found both in
the index and in `runs/` counts once.

Bad input is skipped with a warning naming the file (and line), never fatal: one broken
record among many must not stop `advise`.  A path given explicitly that does not exist is
an InputError.  Pure standard library: the advisor never imports torch.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, first_line

ENV_HOME = "TUNEWISE_HOME"
ENV_OFF = "TUNEWISE_NO_HISTORY"
HISTORY_FILE = "history.jsonl"
HISTORY_SCHEMA = "tunewise/history/v1"
DEFAULT_RUNS = "runs"
# the history keeps its newest lines only: reading stays fast however many runs were made
MAX_ENTRIES = 500
_remembered_here = 0  # runs this process remembered (see `remember`)
# record fields the calibration reads; everything else in record.json stays out of the index
SUMMARY_FIELDS = ("name", "method", "base_model", "status", "steps", "train_time_s", "tokens_per_s",
                  "train_tokens", "peak_memory", "hardware", "started_at", "finished_at", "trainable_params")


@dataclass(frozen=True)
class Entry:
    """One run as the calibration sees it: where it came from and its (summarised) record."""

    source: str  # a path a person can open: record.json, or history.jsonl:LINE
    run: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return str(self.run.get("record") or self.source), str(self.run.get("started_at"))


def tunewise_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".cache" / "tunewise").expanduser()


def history_path() -> Path:
    return tunewise_home() / HISTORY_FILE


def history_enabled() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() in ("", "0", "false", "no")


def default_sources() -> list[Path]:
    """What `advise`/`estimate` read without --calibrate-from: the index and ./runs."""
    if not history_enabled():
        return []
    found = [history_path()] if history_path().is_file() else []
    runs = Path(DEFAULT_RUNS)
    if runs.is_dir():
        found.append(runs)
    return found


# ----------------------------------------------------------------------------- writing


def remember(record: dict[str, Any], run_dir: str | Path) -> Path | None:
    """Append a completed run to the history index; returns its path (None when off/failed).

    Never raises: remembering is a bonus, a run must not fail because ~/.cache is read-only.
    """
    global _remembered_here
    if not history_enabled() or record.get("status") != "completed":
        return None
    path = history_path()
    summary = summarize(record, Path(run_dir))
    # The runners measure CPU memory as RSS growth of the process: after an earlier run in
    # the same process the allocator reuses freed memory, so only a first run's peak is
    # comparable (the calibration ignores the others' memory; their throughput still counts).
    summary["first_in_process"] = _remembered_here == 0
    _remembered_here += 1
    line = json.dumps({"schema": HISTORY_SCHEMA, **summary}, default=str)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # one write() of one line in append mode: concurrent runs never interleave mid-line
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError:
        return None
    return path


def summarize(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The fields of a record.json the calibration needs, plus the steady-state throughput."""
    out = {k: record.get(k) for k in SUMMARY_FIELDS}
    config = record.get("config") or {}
    data = config.get("data") or {}
    out["config"] = {
        "settings": config.get("settings") or {},
        "data": {k: data.get(k) for k in ("tokens_mean", "tokens_max", "used") if k in data},
        "start": config.get("start") or {},
    }
    # how much of the wall time the process had a core: low on a busy machine (noisy tokens/s)
    out["train_cpu_s"] = (record.get("extra") or {}).get("train_cpu_s")
    out["threads"] = (config.get("runtime") or {}).get("threads")
    out["record"] = str((Path(run_dir) / "record.json").resolve())
    out["steady_tokens_per_s"] = steady_tokens_per_s(_metrics_rows(Path(run_dir) / "metrics.jsonl"))
    return out


def steady_tokens_per_s(rows: list[dict[str, Any]]) -> float | None:
    """Throughput after the first logged step (which pays for lazy initialisation).

    Each metrics.jsonl row holds the tokens seen so far and the rate since the previous
    row, so interval i took (tokens_i - tokens_{i-1}) / rate_i seconds; the steady rate is
    the sum of tokens over the sum of seconds of every interval but the first.
    """
    tokens = seconds = 0.0
    previous = None
    for row in rows:
        seen, rate = row.get("tokens"), row.get("tokens_per_s")
        if not isinstance(seen, int | float) or not isinstance(rate, int | float):
            continue
        if previous is not None and rate > 0 and seen > previous:
            tokens += seen - previous
            seconds += (seen - previous) / rate
        previous = seen
    return round(tokens / seconds, 3) if seconds > 0 else None


def _metrics_rows(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- reading


def read_entries(paths: list[str | Path], *, explicit: bool) -> tuple[list[Entry], list[str]]:
    """Entries from history files, run folders, folders of runs and record.json files.

    Returns (entries, warnings).  An explicit path that does not exist is an InputError.
    """
    entries: list[Entry] = []
    warnings: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            if explicit:
                raise InputError("no such file or folder (expected runs/, a run folder, a record.json "
                                 "or a history .jsonl)", path=path, field="calibrate_from")
            continue
        if path.is_file() and path.suffix == ".jsonl":
            _read_history(path, entries, warnings)
        elif path.is_file():
            _read_record(path, entries, warnings)
        elif (path / "record.json").is_file():
            _read_record(path / "record.json", entries, warnings)
        else:
            # hidden folders are a run set aside by --overwrite (runners/_run_dir.py), not a run here
            records = sorted(r for r in path.glob("*/record.json") if not r.parent.name.startswith("."))
            if explicit and not records:
                warnings.append(f"{path}: no run records (*/record.json) found")
            for record in records:
                _read_record(record, entries, warnings)
    return _dedupe(entries), warnings


def _read_history(path: Path, entries: list[Entry], warnings: list[str]) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(f"{path}: unreadable ({exc}); skipped")
        return
    start = max(0, len(lines) - MAX_ENTRIES)
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except ValueError:
            warnings.append(f"{path}:{number}: not a JSON line; skipped")
            continue
        if not isinstance(run, dict) or run.get("schema") != HISTORY_SCHEMA:
            warnings.append(f"{path}:{number}: not a {HISTORY_SCHEMA} entry; skipped")
            continue
        entries.append(Entry(f"{path}:{number}", run))


def _read_record(path: Path, entries: list[Entry], warnings: list[str]) -> None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.append(f"{path}: not readable JSON ({first_line(exc)}); skipped")
        return
    if not isinstance(raw, dict) or raw.get("schema") != "tunewise/run/v1":
        warnings.append(f"{path}: not a tunewise/run/v1 record; skipped")
        return
    entries.append(Entry(str(path), summarize(raw, path.parent)))


def _dedupe(entries: list[Entry]) -> list[Entry]:
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in entries:
        if entry.key not in seen:
            seen.add(entry.key)
            out.append(entry)
    return out


def local_cpu_name() -> str:
    """This machine's CPU model, named as the runners record it (runners/__init__.py)."""
    from advisor.hardware import cpuinfo

    # Linux names the CPU model in /proc/cpuinfo; platform.processor() is often empty
    return cpuinfo().get("model name") or platform.processor() or platform.machine()

