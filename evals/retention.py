"""Which general-skill (retention) tasks to run: bundled offline suites or lm-eval task names.

    --retention builtin            the bundled default suite (evals/suites.py DEFAULT_SUITE)
    --retention <suite>            a bundled suite by name
    --retention mmlu,hellaswag     lm-eval's own tasks (their data must be in the local HF cache)
    --retention none               domain tasks only

Items may be mixed, comma-separated.  Only when lm-eval's own tasks are named is its
built-in task index loaded (include_defaults); existence and offline availability of
those tasks are checked by `harness.check_tasks` before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evals.tasks import TaskSpec
from tunewise.errors import InputError

OFF = ("", "none", "off", "no")


@dataclass
class Retention:
    specs: list[TaskSpec] = field(default_factory=list)
    include_paths: list[str] = field(default_factory=list)
    builtin: bool = False  # lm-eval's own tasks are needed (index its task folder)


def resolve_retention(value: str | None) -> Retention:
    retention = Retention()
    if value is None or value.strip().lower() in OFF:
        return retention
    seen: set[str] = set()
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        names, include = _suite(item)
        if names is None:  # not a bundled suite: an lm-eval task name
            names, retention.builtin = [item], True
        elif include not in retention.include_paths:
            retention.include_paths.append(include)
        for name in names:
            if name not in seen:
                seen.add(name)
                retention.specs.append(TaskSpec(name=name, kind="retention", metric="", filter=""))
    return retention


def _suite(item: str) -> tuple[list[str] | None, str | None]:
    """(task names, include path) of a bundled suite, or (None, None) for any other name."""
    try:
        from evals import suites
    except ImportError:
        if item == "builtin":
            raise InputError("the bundled retention suites are not installed (evals/suites.py)",
                             field="retention") from None
        return None, None
    name = suites.DEFAULT_SUITE if item == "builtin" else item
    if name not in suites.suite_names():
        return None, None
    return list(suites.suite_tasks(name)), str(suites.include_path(name))
