"""Bad inputs to `run` and `eval` (they import torch): one line each, no traceback.

The cases are the `run`/`eval` entries of tests/bad_inputs/manifest.yaml; see
tests/unit/test_bad_inputs.py for the others and for what each case must satisfy.

    .venv/bin/python -m pytest tests/integration/test_bad_inputs_runs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_inputs"))
import corpus  # noqa: E402

CASES = corpus.cases(torch=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path, tiny_model_dir):
    outcome = corpus.run_case(case, tmp_path, tiny_model_dir)
    assert not corpus.check(case, outcome), (corpus.check(case, outcome), outcome.output[-2000:])
