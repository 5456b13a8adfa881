"""Bundled retention suites: lm-eval YAML tasks over local JSONL under evals/suites/<suite>/.

    suite_names()          the suites shipped with tunewise
    suite_tasks(name)      its lm-eval task names (leaf tasks, no group)
    include_path(name)     a folder for lm_eval's TaskManager(include_path=...)
    DEFAULT_SUITE          the suite `tunewise eval --retention builtin` uses

Why include_path() does not return the source folder: the YAMLs name their data files
relative to their own folder, but lm-eval 0.4.13 hands `dataset_kwargs.data_files`
unchanged to `datasets.load_dataset` (lm_eval/api/task.py, ConfigurableTask.download),
which resolves relative paths against the *working directory* (verified: loading the
source folder from another directory fails with FileNotFoundError).  So include_path()
writes copies of the YAMLs with absolute data paths into a per-content cache folder and
returns that.  Pure Python (pyyaml only): no lm-eval import here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parent / "suites"
DEFAULT_SUITE = "tw_general"
CACHE_ENV = "TUNEWISE_CACHE_DIR"  # where materialised suites go; default: the system temp dir


def suite_names() -> list[str]:
    return sorted(p.name for p in SUITES_DIR.iterdir() if p.is_dir() and any(p.glob("*.yaml")))


def _suite_dir(name: str) -> Path:
    folder = SUITES_DIR / name
    if not folder.is_dir():
        raise KeyError(f"unknown retention suite {name!r}; bundled suites: {', '.join(suite_names())}")
    return folder


def _configs(name: str) -> dict[Path, dict]:
    import yaml

    return {p: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(_suite_dir(name).glob("*.yaml"))}


def suite_tasks(name: str) -> list[str]:
    """Leaf task names of a suite, in file order (group YAMLs are skipped)."""
    return [c["task"] for c in _configs(name).values() if isinstance(c.get("task"), str) and "group" not in c]


def _absolute(config: dict, folder: Path) -> dict:
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files is None:
        return config
    if isinstance(files, str):
        files = {"train": files}
    fixed = {split: str((folder / path).resolve()) for split, path in files.items()}
    return {**config, "dataset_kwargs": {**config["dataset_kwargs"], "data_files": fixed}}


def include_path(name: str) -> str:
    """A folder of the suite's YAMLs with absolute data paths, made once per content.

    The folder name carries a hash of the source folder's path and of every YAML and data
    file, so an edited suite or another checkout never reuses a stale copy.
    """
    import yaml

    from tunewise.atomic import atomic_write_text

    folder = _suite_dir(name)
    digest = hashlib.sha256(str(folder).encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get(CACHE_ENV) or tempfile.gettempdir()) / "tunewise-suites"
    target = base / f"{name}-{digest.hexdigest()[:16]}"
    if not (target / ".complete").is_file():
        for path, config in _configs(name).items():
            atomic_write_text(target / path.name, yaml.safe_dump(_absolute(config, folder), sort_keys=False, allow_unicode=True))
        atomic_write_text(target / ".complete", "")
    return str(target)
