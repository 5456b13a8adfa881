"""Load the bad-input manifest and run one case through the CLI (in process).

Used by tests/unit/test_bad_inputs.py and tests/integration/test_bad_inputs_runs.py.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEEDS_TORCH = ("run", "eval")  # commands that import torch once the input is valid
HUGE_LINE_BYTES = 17 * 2**20  # just over tunewise.data.MAX_LINE_BYTES


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    expect: list[str]
    setup: str | None = None

    @property
    def command(self) -> str:
        return self.argv.split()[0]


@dataclass
class Outcome:
    exit_code: int
    lines: list[str]
    output: str
    exception: BaseException | None = field(default=None)


def cases(*, torch: bool) -> list[Case]:
    import yaml

    raw = yaml.safe_load((HERE / "manifest.yaml").read_text(encoding="utf-8"))
    every = [Case(**entry) for entry in raw]
    return [c for c in every if (c.command in NEEDS_TORCH) == torch]


def run_case(case: Case, tmp: Path, model: Path) -> Outcome:
    """Copy the corpus into `tmp`, make the case's extra files, run `tunewise ARGV`."""
    from click.testing import CliRunner

    from tunewise.cli import cli

    corpus = tmp / "corpus"
    shutil.copytree(HERE, corpus, ignore=shutil.ignore_patterns("*.py", "__pycache__", "manifest.yaml"))
    _fill_model(corpus, model)
    out = tmp / "out"
    out.mkdir()
    if case.setup:
        SETUPS[case.setup](corpus, out)
    argv = shlex.split(case.argv.format(corpus=corpus, model=model, out=out))
    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    lines = [line for line in result.output.splitlines() if line.strip()]
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, lines, result.output, exception)


def _fill_model(corpus: Path, model: Path) -> None:
    for path in corpus.rglob("*"):
        if path.suffix in (".json", ".yaml") and path.is_file():
            data = path.read_bytes()
            if b"@MODEL@" in data:
                path.write_bytes(data.replace(b"@MODEL@", str(model).encode()))


def huge_line(corpus: Path, out: Path) -> None:
    """Line 1 fine, line 2 one 17 MiB JSON object (too big to commit)."""
    with open(corpus / "data" / "huge.jsonl", "wb") as handle:
        handle.write(b'{"prompt": "2+2? ", "completion": "4."}\n{"prompt": "')
        handle.write(b"a" * HUGE_LINE_BYTES)
        handle.write(b'", "completion": "b"}\n')


def big_csv_field(corpus: Path, out: Path) -> None:
    """Line 2 fine, line 3 a 200 KB field: over the csv module's 128 KiB field limit."""
    (corpus / "data" / "big_field.csv").write_text(
        'prompt,completion\nWhat is 2+2?,4\n"' + "a" * 200_000 + '",b\n', encoding="utf-8")


def symlink_run_name(corpus: Path, out: Path) -> None:
    """`out/link` points outside the output folder: a run named `link` must not follow it."""
    outside = out.parent / "outside"
    outside.mkdir()
    os.symlink(outside, out / "link")


def foreign_eval_json(corpus: Path, out: Path) -> None:
    """An `eval.json` in the output folder that tunewise did not write: never replaced."""
    (out / "eval.json").write_text('{"mine": 1}')


SETUPS = {"huge_line": huge_line, "big_csv_field": big_csv_field, "symlink_run_name": symlink_run_name, "foreign_eval_json": foreign_eval_json}


def check(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with the outcome (empty: the case passes)."""
    problems = []
    if outcome.exception is not None:
        problems.append(f"raised {type(outcome.exception).__name__}: {outcome.exception}")
    if outcome.exit_code == 0:
        problems.append("exit code 0")
    if "Traceback" in outcome.output:
        problems.append("traceback in the output")
    if len(outcome.lines) != 1:
        problems.append(f"{len(outcome.lines)} output lines, expected 1")
    text = "\n".join(outcome.lines)
    missing = [f for f in case.expect if f not in text]
    if missing:
        problems.append(f"missing {missing}")
    return problems
