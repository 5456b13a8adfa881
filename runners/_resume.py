"""--resume continues the same run: refuse one whose inputs or settings differ from it.

A resumed run's record describes the whole run, so everything that shapes the training
must be what the interrupted part used: method, base model, init_from, the training and
replay data (path, and content when the record holds its SHA-256) and every training
setting.  Only `logging_steps` and `save_steps` may change: they decide how often metrics
are logged and checkpoints saved, not what is trained.  A larger `max_steps` is refused
too: the learning-rate schedule (warm-up fraction, cosine decay) is laid out over
`max_steps`, so the steps already done followed another schedule than the record would claim.

A run that has not trained yet (no step, checkpoint or metric) starts from step 0 anyway,
so it may be resumed with anything.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from runners._common import model_reference
from runners._run_dir import has_progress
from tunewise.errors import InputError
from tunewise.plan import Plan
from tunewise.records import load_run_record
from tunewise.schema import from_mapping, to_mapping
from tunewise.settings import TrainSettings

FREE_SETTINGS = ("logging_steps", "save_steps")
CHUNK = 1 << 20
SCHEDULE = " (the learning-rate schedule spans the planned steps: the steps done followed the old one)"


def input_fingerprint(plan: Plan) -> dict[str, Any]:
    """What the run reads, resolved: the record's `extra.inputs`, compared on --resume."""
    data = plan.data
    return {
        "model": model_reference(plan.model),
        "init_from": _resolved(plan.init_from),
        "train": _file(data.train),
        "general": _file(data.general) if plan.settings.replay > 0 else None,
    }


def check_resume(run_dir: Path, plan: Plan, options: Any) -> None:
    """Raise InputError (one line, naming the field) when `plan` is not the interrupted run's."""
    previous = load_run_record(run_dir)
    if not has_progress(run_dir, previous):
        return
    where = run_dir / "record.json"
    recorded = previous.extra.get("inputs") or {}
    _same("method", previous.method, plan.method.value, where)
    old_plan = previous.plan or {}
    _same("model", recorded.get("model") or model_reference(str(old_plan.get("model"))),
          model_reference(plan.model), where)
    _same("init_from", recorded.get("init_from", _resolved(old_plan.get("init_from"))), _resolved(plan.init_from),
          where)
    old_data = old_plan.get("data") or {}
    _same_data("data.train", recorded.get("train"), old_data.get("train"), plan.data.train, where)
    if plan.settings.replay > 0:
        _same_data("data.general", recorded.get("general"), old_data.get("general"), plan.data.general, where)
    _same_settings(old_plan.get("settings") or {}, _as_recorded(plan, options), where)
    count = previous.hardware.get("count")
    if count is not None:
        _same("num_processes", count, options.num_processes, where)


def _as_recorded(plan: Plan, options: Any) -> TrainSettings:
    """The settings as a run records them: launched workers run (and record) the launch precision."""
    if options.num_processes > 1 and plan.method.trains:
        from runners.accelerate_config import launch_precision

        return plan.settings.replace(precision=launch_precision(plan.settings))
    return plan.settings


def _same(field: str, old: Any, new: Any, where: Path) -> None:
    if old != new:
        why = SCHEDULE if field in ("settings.max_steps", "settings.epochs") else ""
        raise InputError(
            f"--resume with a different {field}: the interrupted run used {old!r}, this command gives {new!r}{why}; "
            "resume with the same inputs and settings, or start over with --overwrite or another --name",
            path=where, field=field,
        )


def _same_data(field: str, recorded: dict | None, old_path: str | None, new_path: str | None, where: Path) -> None:
    """Same content when the record holds its hash (the file may have moved), else the same path."""
    new = _file(new_path)
    if not (recorded and recorded.get("sha256") and new and new.get("sha256")):
        _same(field, recorded["path"] if recorded else _resolved(old_path), _resolved(new_path), where)
    elif recorded["sha256"] != new["sha256"] and recorded["path"] == new["path"]:
        raise InputError(
            f"--resume with changed data: {new['path']} was edited after the interrupted run started (its SHA-256 "
            "differs from the record's); restore it, or start over with --overwrite or another --name",
            path=where, field=field,
        )
    elif recorded["sha256"] != new["sha256"]:
        _same(field, recorded["path"], new["path"], where)


def _same_settings(old: dict[str, Any], new: TrainSettings, where: Path) -> None:
    previous = from_mapping(TrainSettings, old, where) if old else TrainSettings()  # defaults fill older records
    before, after = to_mapping(previous), to_mapping(new)
    for name, value in before.items():
        if name not in FREE_SETTINGS:
            _same(f"settings.{name}", value, after.get(name), where)


def _resolved(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).expanduser().resolve())
    except (OSError, RuntimeError):  # e.g. "~nobody/x": compared as given; the runner reports it
        return path


def _file(path: str | None) -> dict[str, Any] | None:
    """The file's absolute path and SHA-256 (no hash when unreadable: the runner reports that)."""
    if not path:
        return None
    resolved = _resolved(path)
    try:
        stat = Path(resolved).stat()
    except OSError:
        return {"path": resolved, "sha256": None}
    if not Path(resolved).is_file():  # a folder or a pipe (never opened: it would block)
        return {"path": resolved, "sha256": None}
    return {"path": resolved, "sha256": _sha256(resolved, stat.st_size, stat.st_mtime_ns)}


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str | None:
    """The file's SHA-256, once per version of it (size and mtime are part of the key): a
    --resume checks the data, then the run records the same hash (None: unreadable)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
