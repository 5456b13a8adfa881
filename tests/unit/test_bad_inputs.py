"""Bad inputs that need no torch (advise, estimate, report, hardware files): one line each.

Every case in tests/bad_inputs/manifest.yaml whose command is not `run`/`eval` runs here
through the CLI in process: non-zero exit, exactly one output line naming the file (and
line and field where they apply), no traceback.

    .venv/bin/python -m pytest tests/unit/test_bad_inputs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_inputs"))
import corpus  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "tunewise" / "assets" / "tiny-llama"
CASES = corpus.cases(torch=False)


def test_the_corpus_is_big_enough():
    assert len(corpus.cases(torch=False)) + len(corpus.cases(torch=True)) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path):
    outcome = corpus.run_case(case, tmp_path, MODEL)
    assert not corpus.check(case, outcome), (corpus.check(case, outcome), outcome.output[-2000:])
