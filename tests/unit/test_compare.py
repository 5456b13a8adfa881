"""Paired comparison statistics (numpy only, no torch, no lm-eval).

    .venv/bin/python -m pytest tests/unit/test_compare.py
"""

import subprocess
import sys

import numpy as np
import pytest

from evals.compare import (
    check_scores_comparable,
    check_settings_comparable,
    compare_scores,
    mcnemar_exact,
    pair_rows,
    paired_bootstrap_ci,
    verdict,
)
from tunewise.errors import InputError
from tunewise.records import EvalSettings, TaskScore


def _score(**kw):
    base = dict(task="t", metric="acc", score=0.5, stderr=0.1, n=10, version="v1", num_fewshot=0)
    return TaskScore(**(base | kw))


def _settings(**kw):
    base = dict(batch_size=8, dtype="float32", limit=None, num_fewshot=None, device="cpu", bootstrap_iters=100000)
    return EvalSettings(**(base | kw))


def _coverage(draw, true_mean, reps, resamples=2000):
    rng = np.random.default_rng(1)
    hits = 0
    for r in range(reps):
        low, high = paired_bootstrap_ci(draw(rng), resamples=resamples, seed=r)
        hits += low <= true_mean <= high
    return hits / reps


def test_bootstrap_covers_true_difference_for_binary_pairs():
    # base correct w.p. 0.6; run flips 10% of base-correct to wrong and 25% of wrong to right:
    # E[run - base] = 0.4 * 0.25 - 0.6 * 0.10 = 0.04
    def draw(rng):
        base = rng.random(200) < 0.6
        flip = np.where(base, rng.random(200) < 0.10, rng.random(200) < 0.25)
        return (base ^ flip).astype(float) - base.astype(float)

    cov = _coverage(draw, 0.04, reps=300)
    assert 0.91 <= cov <= 0.98, cov


def test_bootstrap_covers_true_difference_for_continuous_scores():
    def draw(rng):
        base = rng.normal(0.0, 1.0, 80)
        return (base + rng.normal(0.3, 0.5, 80)) - base  # paired, mean difference 0.3

    cov = _coverage(draw, 0.3, reps=200, resamples=1000)
    assert 0.90 <= cov <= 0.98, cov


def test_bootstrap_is_seeded_and_paired():
    d = np.array([1.0, 0.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0])
    assert paired_bootstrap_ci(d, seed=3) == paired_bootstrap_ci(d, seed=3)
    low, high = paired_bootstrap_ci(np.zeros(50))
    assert low == high == 0.0
    # A constant +1 shift is certain however few the items: the paired interval is a point.
    assert paired_bootstrap_ci(np.ones(5)) == (1.0, 1.0)


@pytest.mark.parametrize(
    "b,c,expected",
    [
        (10, 2, 158 / 4096),  # 2 * (1 + 12 + 66) / 2^12
        (1, 9, 22 / 1024),  # 2 * (1 + 10) / 2^10
        (0, 6, 2 / 64),
        (5, 5, 1.0),
        (0, 0, 1.0),
        (3, 0, 0.25),
    ],
)
def test_mcnemar_exact_matches_binomial_values(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(c, b) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_large_counts_stay_finite_and_small():
    p = mcnemar_exact(400, 600)
    assert 0.0 < p < 1e-9


def test_verdict_direction_follows_higher_is_better():
    assert verdict(0.1, 0.05, 0.15, None, True) == "gain"
    assert verdict(-0.1, -0.15, -0.05, None, True) == "regression"
    # lower is better (e.g. perplexity): a drop is a gain
    assert verdict(-0.1, -0.15, -0.05, None, False) == "gain"
    assert verdict(0.1, 0.05, 0.15, None, False) == "regression"
    assert verdict(0.1, -0.01, 0.2, None, True) == "no detectable change"
    # binary metrics need McNemar too
    assert verdict(0.1, 0.01, 0.2, 0.2, True) == "no detectable change"
    assert verdict(0.1, 0.01, 0.2, 0.01, True) == "gain"


def test_compare_scores_binary_uses_mcnemar_and_pairs_examples():
    base = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0] * 6, dtype=float)
    run = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 0] * 6, dtype=float)
    comp = compare_scores("lora", _score(), _score(), base, run)
    assert comp.test == "mcnemar"
    assert comp.n == 60
    assert comp.diff == pytest.approx(0.5)
    assert comp.p_value == pytest.approx(mcnemar_exact(0, 30))
    assert comp.ci_low > 0 and comp.verdict == "gain"
    worse = compare_scores("lora", _score(higher_is_better=False), _score(higher_is_better=False), base, run)
    assert worse.verdict == "regression"


def test_compare_scores_continuous_uses_bootstrap_only():
    base = np.linspace(0.0, 1.0, 40)
    comp = compare_scores("full", _score(metric="f"), _score(metric="f"), base, base - 0.25)
    assert comp.test == "paired-bootstrap" and comp.p_value is None
    assert comp.ci_low == pytest.approx(-0.25) and comp.ci_high == pytest.approx(-0.25)
    assert comp.verdict == "regression"


def test_pair_rows_joins_on_doc_id_and_refuses_different_data():
    base = [{"doc_id": i, "doc_hash": f"h{i}", "prompt_hash": "p", "score": i % 2} for i in range(4)]
    run = [{"doc_id": i, "doc_hash": f"h{i}", "prompt_hash": "p", "score": 1} for i in (3, 2, 1, 0)]
    b, r, warnings = pair_rows(base, run, task="t", run="lora")
    assert list(b) == [1, 0, 1, 0] and list(r) == [1, 1, 1, 1] and warnings == []
    run[0]["doc_hash"] = "other"
    with pytest.raises(InputError, match="doc_id 3 holds different data"):
        pair_rows(base, run, task="t", run="lora")
    run[0]["doc_hash"] = "h3"
    run[1]["prompt_hash"] = "q"
    assert len(pair_rows(base, run, task="t", run="lora")[2]) == 1
    assert pair_rows(base, run, task="t", run="lora", check_prompt=False)[2] == []


@pytest.mark.parametrize("attr,value", [("version", "v2"), ("num_fewshot", 5), ("metric", "acc_norm")])
def test_refuses_scores_from_different_task_settings(attr, value):
    with pytest.raises(InputError, match=f"{attr} differs") as info:
        check_scores_comparable(_score(), _score(**{attr: value}), "lora")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "attr,value", [("batch_size", 4), ("dtype", "bfloat16"), ("limit", 20), ("num_fewshot", 3)]
)
def test_refuses_records_with_mismatched_settings(attr, value):
    with pytest.raises(InputError, match=f"{attr} differs") as info:
        check_settings_comparable(_settings(), _settings(**{attr: value}), a_name="a/eval.json", b_name="b/eval.json")
    assert "\n" not in str(info.value)
    check_settings_comparable(_settings(), _settings(device="cuda"), a_name="a", b_name="b")  # device is informative only


def test_compare_module_does_not_import_torch():
    code = "import sys, evals.compare, evals.tasks, evals.eval_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
