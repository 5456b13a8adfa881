"""The eval output folder: `eval.json` and the `samples/<variant>/` folders it points to.

An evaluation replaces an earlier one in the same folder as a whole, so a reader never
finds samples that no record lists, or a record whose samples come from another run:

- `eval.json` is replaced only when it is a tunewise eval record (a file a user put there,
  or one this tunewise cannot read, is refused before anything is evaluated), and
  atomically (EvalRecord.write: temp file + rename).
- `samples/<variant>/` of every variant evaluated is written into a staging folder and
  swapped in by rename, replacing the earlier folder whole (no stale task files).
- `samples/<variant>/` of variants only the replaced record listed are removed.
- A samples folder holding anything but the `*.jsonl` files tunewise writes is not
  tunewise's to delete: refused up front, like a foreign eval.json.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.samples import write_rows
from tunewise.errors import InputError
from tunewise.records import EvalRecord, load_eval_record

RECORD = "eval.json"
SAMPLES = "samples"


@dataclass
class OutputFolder:
    path: Path
    previous: list[str] = field(default_factory=list)  # variants the eval.json being replaced lists


def prepare_output(out: str | Path, names: list[str]) -> OutputFolder:
    """Check, before any work, that writing an evaluation of `names` into `out` loses nothing
    a user made; return what the earlier record there listed."""
    out = Path(out)
    previous = _previous_variants(out / RECORD)
    for name in dict.fromkeys([*names, *previous]):
        _check_samples_folder(out / SAMPLES / name)
    return OutputFolder(out, previous)


def _previous_variants(path: Path) -> list[str]:
    if not (path.exists() or path.is_symlink()):
        return []
    try:
        record = load_eval_record(path)
    except InputError as exc:
        raise InputError(f"not a tunewise eval record ({exc.message}); refusing to replace it: "
                         "choose another --out or move the file", path=path) from None
    return [v.name for v in record.variants]


def _check_samples_folder(folder: Path) -> None:
    if not (folder.exists() or folder.is_symlink()):
        return
    if folder.is_symlink() or not folder.is_dir():
        raise InputError("expected a folder of per-example results; refusing to replace it", path=folder)
    foreign = sorted(p.name for p in folder.iterdir()
                     if p.is_symlink() or not p.is_file() or p.suffix != ".jsonl")
    if foreign:
        raise InputError(f"holds files tunewise did not write ({', '.join(foreign[:3])}); "
                         "refusing to replace it: choose another --out or move them", path=folder)


def write_output(folder: OutputFolder, record: EvalRecord, samples: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Swap in each variant's samples (`samples[variant][file name] = rows`), then write the
    record, then drop what only the replaced record listed.

    The record is written last: a crash in between leaves the earlier record, never one
    whose samples are missing."""
    root = folder.path / SAMPLES
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for name, files in samples.items():
            _swap(root / name, _stage(staging / "new" / name, files), staging / "old" / name)
        record.write(folder.path / RECORD)
        for name in folder.previous:
            if name not in samples and (root / name).is_dir():
                shutil.rmtree(root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(folder: Path, files: dict[str, list[dict[str, Any]]]) -> Path:
    folder.mkdir(parents=True)
    for file_name, rows in files.items():
        write_rows(folder / file_name, rows)
    return folder


def _swap(target: Path, new: Path, old: Path) -> None:
    """Replace folder `target` with `new` by two renames; the earlier folder moves to `old`."""
    if target.exists():
        old.parent.mkdir(parents=True, exist_ok=True)
        target.rename(old)
    new.rename(target)
