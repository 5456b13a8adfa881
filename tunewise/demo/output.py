"""Where the demo writes, without ever touching what a user made.

    tunewise-demo/                  the --out folder, marked as the demo's own
      .tunewise-demo                marker (JSON): this folder is demo output
      report.html                   the latest complete demo's report (atomic copy)
      latest.json                   which subfolder that is, and its summary
      20261206-013000/              one demo: advice/, runs/, eval/, report.html, summary.json

Each demo writes into a fresh timestamped subfolder, so the paths recorded inside it
(run folders in eval.json, DPO's init_from) stay true after it completes.  Only when it
completes are `report.html` and `latest.json` replaced (atomically) and the earlier demo
subfolders removed.  A demo that fails or is interrupted leaves the previous one as it
was and renames its own subfolder `<stamp>-failed` (kept for its error.log; the next
complete demo removes it).  A folder without the marker is refused, never written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunewise import __version__
from tunewise.atomic import atomic_write_bytes, atomic_write_json
from tunewise.errors import InputError

MARKER = ".tunewise-demo"
LATEST = "latest.json"
REPORT = "report.html"
FAILED_SUFFIX = "-failed"
STALE_SECONDS = 24 * 3600  # an unfinished subfolder this old belongs to no live demo


def claim(out: Path) -> Path:
    """Make `out` the demo's folder, or refuse (one line) if it holds anything else."""
    out = out.expanduser()
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder; choose another --out", path=out)
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise InputError("exists and is not a tunewise demo output (no .tunewise-demo marker); "
                         "choose another --out, nothing was written", path=out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        atomic_write_json(out / MARKER, {"schema": "tunewise/demo-folder/v1", "version": __version__,
                                         "note": "written by `tunewise demo`; it may replace this folder's contents"})
    return out


def new_subfolder(out: Path) -> Path:
    """A fresh `<UTC stamp>` folder inside `out` (a suffix when two demos start in one second)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        candidate = out / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise InputError("cannot create a fresh demo subfolder", path=out)


@contextmanager
def attempt(work: Path):
    """On any failure or Ctrl-C, rename `work` to `<work>-failed` and re-raise."""
    try:
        yield work
    except BaseException:
        failed = work.with_name(work.name + FAILED_SUFFIX)
        if work.exists() and not failed.exists():
            work.rename(failed)
        raise


def publish(out: Path, work: Path, summary: dict[str, Any]) -> Path:
    """The completed demo in `work` becomes the latest: copy its report up, point at it,
    then remove earlier demo subfolders.  Returns the top-level report path."""
    atomic_write_json(work / "summary.json", summary)
    report = atomic_write_bytes(out / REPORT, (work / REPORT).read_bytes())
    atomic_write_json(out / LATEST, {"schema": "tunewise/demo-latest/v1", "folder": work.name,
                                     "report": str(work / REPORT), **summary})
    _prune(out, keep=work)
    return report


def _prune(out: Path, keep: Path) -> None:
    """Remove earlier demo subfolders: complete ones, failed ones, and stale unfinished ones.

    An unfinished subfolder younger than STALE_SECONDS may be another demo still running.
    """
    now = time.time()
    for child in out.iterdir():
        if not child.is_dir() or child == keep or not child.name[:8].isdigit():
            continue
        finished = (child / "summary.json").is_file() or child.name.endswith(FAILED_SUFFIX)
        if finished or now - child.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(child, ignore_errors=True)


def read_latest(out: Path) -> dict[str, Any] | None:
    """The latest complete demo's pointer (None when there is none)."""
    try:
        return json.loads((out / LATEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def display(path: Path) -> str:
    """A path as short as is still unambiguous: relative to the working folder when inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)
