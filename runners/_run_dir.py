"""Run folders: safe names, what a run writes, and replacing one without ever losing it.

    runs/lora/                 the run: record.json, metrics.jsonl, adapter/, checkpoints/, ...
    runs/.lora.previous/       --overwrite only: the replaced run, until the new one completes
    runs/.lora.failed/         --overwrite only: the last attempt that did not complete

`--overwrite` moves the old run aside (one rename) and trains in `runs/lora/`, so every
path the new run records is its final one; the old run is deleted only once the new one
has completed, and comes back (one rename) on any failure or interrupt.  A process killed
in between leaves both folders; the next `tunewise run` with that name puts the old run
back if its place is empty, or keeps it aside until a replacement completes.

A folder is only ever replaced when it is a tunewise run (its record.json loads) holding
nothing but what runs write: a user's files that happen to share the name are never
deleted.  A run that failed before training started (no step, checkpoint, metric or
artifact) does not block a corrected rerun of the same name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, TunewiseError
from tunewise.records import RunRecord, load_run_record

# A run name is one path component: it can never climb out of the output folder.
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHECKPOINTS = "checkpoints"
PREVIOUS, FAILED = "previous", "failed"

# Everything a run writes at its top level.  Bookkeeping: runners/__init__.py (record,
# error.log), runners/_callbacks.py (metrics), runners/launch.py + accelerate_config.py
# (launch files), runners/rlhf.py (sft_data.jsonl).  Results and progress: the artifacts of
# runners/_train.py, prompting.py, reward.py and rlhf.py, and the trainers' checkpoints.
BOOKKEEPING = frozenset({"record.json", "error.log", "metrics.jsonl", "launch.json", "accelerate_config.yaml",
                         "deepspeed_config.json", "sft_data.jsonl", CHECKPOINTS})
RESULTS = frozenset({"adapter", "model", "merged", "prompt.json", "reward_model", "reward_metrics.jsonl", "sft",
                     ".reward_checkpoints"})
SYSTEM_FILES = frozenset({".DS_Store"})  # written by file browsers, not by the user
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:partial|[A-Za-z0-9_]+\.tmp)$")  # _publish, atomic writes


def run_dir_for(out_dir: str | Path, name: str) -> Path:
    """`out_dir/name`, refusing names that are not a single safe path component."""
    if not RUN_NAME.match(name) or name in (".", ".."):
        raise InputError(
            f"invalid run name {name!r}: use letters, digits, '.', '_' or '-' (no slashes), "
            "starting with a letter or digit",
            field="name",
        )
    out = Path(out_dir).resolve()
    run_dir = (out / name).resolve()
    if run_dir.parent != out:  # belt and braces: a symlink named like a run must not escape
        raise InputError("run folder must be directly inside the output folder", path=run_dir, field="name")
    return run_dir


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer state was fully written, or None.

    transformers writes `trainer_state.json` last (after weights, optimizer, scheduler and
    RNG state; `Trainer._save_checkpoint`), so a checkpoint without a readable one was cut
    off mid-write (e.g. SIGKILL) and is skipped.
    """
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if not (match and path.is_dir()):
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


# ----------------------------------------------------------------------------- what a folder holds


def foreign_entry(run_dir: Path) -> str | None:
    """The first entry of `run_dir` that no tunewise run writes (None: all of them are a run's)."""
    for name in sorted(os.listdir(run_dir)):
        temporary = TEMPORARY.match(name)
        base = temporary.group("name") if temporary else name
        if base not in BOOKKEEPING | RESULTS and name not in SYSTEM_FILES:
            return name
    return None


def has_progress(run_dir: Path, record: RunRecord) -> bool:
    """Whether the run trained at all or produced something: then only --resume or
    --overwrite may touch it."""
    if record.steps or record.artifacts or last_complete_checkpoint(run_dir / CHECKPOINTS) is not None:
        return True
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return True
    return any((run_dir / name).exists() for name in RESULTS)


def replaceable_run(run_dir: Path, why: str) -> RunRecord:
    """The folder's record, if the folder may be replaced; else one line saying why not."""
    if not (run_dir / "record.json").exists():
        raise InputError(f"exists but is not a tunewise run folder (no record.json); refusing to {why}", path=run_dir)
    try:
        record = load_run_record(run_dir)
    except InputError as exc:
        raise InputError(f"record.json is not a tunewise run record ({exc}); refusing to {why}",
                         path=run_dir) from None
    foreign = foreign_entry(run_dir)
    if foreign is not None:
        raise InputError(f"holds {foreign!r}, which tunewise runs do not write; refusing to {why}: "
                         "move it away or choose another --name", path=run_dir)
    return record


def _failed_before_training(run_dir: Path) -> bool:
    """A run that failed (or was stopped) before its first step: nothing in it is worth
    keeping over a corrected rerun.  A "running" one may be alive, so it never qualifies."""
    try:
        record = load_run_record(run_dir)
    except InputError:
        return False
    return (record.status in ("failed", "interrupted") and not has_progress(run_dir, record)
            and foreign_entry(run_dir) is None)


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> str:
    """Create or reuse the run folder; returns "new", "resume" or "overwrite".

    An existing, non-empty folder is refused unless --resume or --overwrite, or it holds a
    run that failed before training started.  --overwrite here deletes at once (nested
    stages such as rlhf's sft/); `claim_run_dir` keeps a top-level run until its
    replacement completes.
    """
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        run_dir.mkdir(parents=True, exist_ok=True)
        return "new"
    if not run_dir.is_dir():
        raise InputError("exists and is not a folder; choose another --name", path=run_dir)
    if resume:
        if not (run_dir / "record.json").exists():
            raise InputError("not a tunewise run folder (no record.json); nothing to resume", path=run_dir)
        if load_run_record(run_dir).status == "completed":
            raise InputError("this run already completed; use --overwrite to train it again", path=run_dir)
        return "resume"
    if overwrite:
        replaceable_run(run_dir, "delete it")
        shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        return "overwrite"
    if _failed_before_training(run_dir):  # e.g. the data was missing: the rerun fixes it
        shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        return "new"
    aside = sibling(run_dir, PREVIOUS)
    kept = f" (the run it was replacing is kept in {aside} until a replacement completes)" if aside.is_dir() else ""
    raise InputError(f"run folder already exists; pass --resume to continue it or --overwrite to replace it{kept}",
                     path=run_dir)


# ----------------------------------------------------------------------------- claiming a folder for a run


def sibling(run_dir: Path, role: str) -> Path:
    """`.<name>.previous` / `.<name>.failed` next to the run (hidden: never a run name)."""
    return run_dir.with_name(f".{run_dir.name}.{role}")


@contextmanager
def claim_run_dir(run_dir: Path, plan: Any, options: Any) -> Iterator[str]:
    """The folder for a top-level run, as `prepare_run_dir`'s mode; with --overwrite the old
    run stays recoverable until the body completes (see the module docstring).

    --resume is checked against the interrupted run's record first (runners/_resume.py).
    """
    _put_back_orphan(run_dir)
    if options.overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
        previous = _set_aside(run_dir)
        try:
            yield "overwrite"
        except BaseException as exc:
            _explain(exc, run_dir, _put_back(run_dir, previous))
            raise
        _discard(run_dir)
        return
    mode = prepare_run_dir(run_dir, resume=options.resume, overwrite=options.overwrite)
    if mode == "resume":
        from runners._resume import check_resume

        check_resume(run_dir, plan, options)
    yield mode
    if mode == "resume":  # a resumed replacement (its --overwrite was killed) completed
        _discard(run_dir)


def _put_back_orphan(run_dir: Path) -> None:
    """A killed --overwrite can leave the old run aside with nothing in its place: restore it."""
    previous = sibling(run_dir, PREVIOUS)
    if previous.is_dir() and (not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir()))):
        if run_dir.exists():
            run_dir.rmdir()
        previous.rename(run_dir)


def _set_aside(run_dir: Path) -> Path:
    """Move the run being replaced to `.<name>.previous`; returns that folder.

    When a killed --overwrite already set the old run aside, the folder in its place is
    that unfinished replacement: it becomes the failed attempt, the old run stays aside.
    """
    record = replaceable_run(run_dir, "replace it")
    previous = sibling(run_dir, PREVIOUS)
    if previous.exists():
        if record.status == "completed":  # the replacement completed; only the clean-up was missed
            _remove_ours(previous)
        else:
            _move_to_failed(run_dir)
    if run_dir.exists():
        run_dir.rename(previous)
    run_dir.mkdir()
    return previous


def _put_back(run_dir: Path, previous: Path) -> Path:
    """The attempt becomes `.<name>.failed` and the old run returns; returns the attempt's folder."""
    failed = _move_to_failed(run_dir)
    if previous.is_dir():
        previous.rename(run_dir)
    return failed


def _move_to_failed(run_dir: Path) -> Path:
    failed = sibling(run_dir, FAILED)
    try:
        _remove_ours(failed)
    except InputError:  # not ours after all: keep it, and this attempt under another name
        failed = sibling(run_dir, f"{FAILED}-{os.getpid()}")
    if run_dir.exists():
        run_dir.rename(failed)
    return failed


def _discard(run_dir: Path) -> None:
    """The replacement completed: the old run and older failed attempts go (a folder that
    turns out not to be ours stays: the run itself has completed either way)."""
    for role in (PREVIOUS, FAILED):
        try:
            _remove_ours(sibling(run_dir, role))
        except InputError:
            pass


def _remove_ours(folder: Path) -> None:
    """Delete a hidden sibling this module made; anything else under that name is refused."""
    if not folder.exists():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise InputError("is not a folder tunewise left; refusing to delete it", path=folder)
    if any(folder.iterdir()):
        replaceable_run(folder, "delete it")
    shutil.rmtree(folder)


def _explain(exc: BaseException, run_dir: Path, failed: Path) -> None:
    """Point the error's paths at the attempt's new place and say the old run is back."""
    from runners._common import RunInterrupted

    if not isinstance(exc, TunewiseError):
        return
    text = str(exc).replace(f"{run_dir}{os.sep}", f"{failed}{os.sep}")
    if isinstance(exc, RunInterrupted):  # its "continue with --resume" no longer applies
        text = f"{text.split(';')[0]}; the interrupted attempt is in {failed}"
    exc.message = f"{text}; --overwrite did not complete, so the previous run is back in {run_dir}"
    exc.path = exc.line = exc.field = None  # already inside the message
