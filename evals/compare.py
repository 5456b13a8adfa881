"""Paired comparison of a run against the base model, from per-example results.

Why paired: both models answer the same items, so the per-item differences carry the
comparison; two independent stderrs drop the covariance and are conservative
(lm-eval issue #3831; Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640).

- Paired bootstrap (Berg-Kirkpatrick et al. 2012): resample items with replacement,
  recompute mean(d_i) with d_i = run_i - base_i, take the 2.5 and 97.5 percentiles.
  Resampling n items from the empirical distribution of d is the same as drawing the
  counts of each distinct value of d from Multinomial(n, counts / n); when d takes few
  distinct values (binary metrics: -1, 0, 1) that is what we draw, in O(resamples).
- McNemar exact test (binary metrics): with b = items base got right and run got wrong,
  c = the reverse, p = min(1, 2 * P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2)
  (the statsmodels `mcnemar(exact=True)` definition).
- Verdict: a change is detected when the 95% interval excludes 0 (and, for binary
  metrics, McNemar p < 0.05 as well); its direction is "gain" or "regression" according
  to the metric's `higher_is_better`.

numpy only: no torch, no lm-eval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunewise.errors import InputError
from tunewise.records import Comparison, EvalSettings, TaskScore, Verdict

RESAMPLES = 10_000
LEVEL = 0.95
ALPHA = 0.05
SEED = 0
_FEW_VALUES = 64  # at most this many distinct differences -> multinomial draw
_CHUNK_ELEMENTS = 1 << 22  # index-resampling chunk (~32 MiB of int64)

# Settings that change scores; two records are compared only when these are equal.
COMPARABLE_SETTINGS = ("batch_size", "dtype", "limit", "num_fewshot", "seed", "apply_chat_template")


def paired_bootstrap_ci(
    diffs: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile interval of mean(diffs) under resampling of items (see module docstring)."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("no paired examples")
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    if values.size <= _FEW_VALUES:
        draws = rng.multinomial(n, counts / n, size=resamples)
        means = draws @ values / n
    else:
        means = np.empty(resamples)
        step = max(1, _CHUNK_ELEMENTS // n)
        for start in range(0, resamples, step):
            stop = min(resamples, start + step)
            means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    p = min(1, 2 * sum_{k <= min(b,c)} C(b+c, k) / 2^(b+c)), in exact integer arithmetic.
    """
    if b < 0 or c < 0:
        raise ValueError("counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def is_binary(*arrays: np.ndarray) -> bool:
    return all(bool(np.isin(a, (0.0, 1.0)).all()) for a in arrays)


def verdict(diff: float, ci_low: float, ci_high: float, p_value: float | None, higher_is_better: bool) -> Verdict:
    """gain / regression / no detectable change (see the module docstring)."""
    detected = ci_low > 0.0 or ci_high < 0.0
    if p_value is not None:
        detected = detected and p_value < ALPHA
    if not detected or diff == 0.0:
        return "no detectable change"
    better = diff > 0.0 if higher_is_better else diff < 0.0
    return "gain" if better else "regression"


def pair_rows(
    base_rows: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
    *,
    task: str,
    run: str,
    check_prompt: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Join per-example rows on doc_id; refuse when the same doc_id holds different data.

    Returns (base scores, run scores, warnings).  Prompts may legitimately differ only for
    prompt runs (their demonstrations are prepended); otherwise a prompt_hash mismatch is
    reported as a warning.
    """
    base_by_id = {r["doc_id"]: r for r in base_rows}
    base_scores, run_scores, prompt_mismatch = [], [], 0
    for row in run_rows:
        other = base_by_id.get(row["doc_id"])
        if other is None:
            continue
        if other.get("doc_hash") != row.get("doc_hash"):
            raise InputError(
                f"cannot compare {run} with base on {task}: doc_id {row['doc_id']} holds different "
                "data (doc_hash differs); evaluate both on the same data"
            )
        prompt_mismatch += other.get("prompt_hash") != row.get("prompt_hash")
        base_scores.append(float(other["score"]))
        run_scores.append(float(row["score"]))
    warnings = []
    if check_prompt and prompt_mismatch:
        warnings.append(f"{run} on {task}: {prompt_mismatch} prompt(s) differ from the base's (prompt_hash)")
    return np.asarray(base_scores), np.asarray(run_scores), warnings


def compare_scores(
    run: str,
    base: TaskScore,
    score: TaskScore,
    base_scores: np.ndarray,
    run_scores: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """One Comparison from paired per-example scores (already joined by `pair_rows`)."""
    check_scores_comparable(base, score, run)
    n = int(base_scores.size)
    if n == 0:
        raise InputError(f"cannot compare {run} with base on {score.task}: no common examples")
    diffs = run_scores - base_scores
    low, high = paired_bootstrap_ci(diffs, resamples=resamples, seed=seed)
    p_value, test = None, "paired-bootstrap"
    if is_binary(base_scores, run_scores):
        b = int(np.sum((base_scores == 1.0) & (run_scores == 0.0)))
        c = int(np.sum((base_scores == 0.0) & (run_scores == 1.0)))
        p_value, test = mcnemar_exact(b, c), "mcnemar"
    diff = float(diffs.mean())
    return Comparison(
        run=run,
        task=score.task,
        metric=score.metric,
        base=float(base_scores.mean()),
        score=float(run_scores.mean()),
        diff=diff,
        ci_low=low,
        ci_high=high,
        n=n,
        test=test,
        p_value=p_value,
        verdict=verdict(diff, low, high, p_value, score.higher_is_better),
        kind=score.kind,
    )


def check_scores_comparable(base: TaskScore, score: TaskScore, run: str = "run") -> None:
    """Refuse (one line) to compare scores from different task versions, shots or metrics."""
    for attr in ("metric", "version", "num_fewshot", "higher_is_better"):
        a, b = getattr(base, attr), getattr(score, attr)
        if a != b:
            raise InputError(
                f"cannot compare {run} with base on {score.task}: {attr} differs "
                f"({b!r} vs base {a!r}); evaluate both with identical settings"
            )


def check_settings_comparable(a: EvalSettings, b: EvalSettings, *, a_name: str, b_name: str) -> None:
    """Refuse (one line) to compare records evaluated with different settings."""
    for attr in COMPARABLE_SETTINGS:
        va, vb = getattr(a, attr), getattr(b, attr)
        if va != vb:
            raise InputError(
                f"cannot compare eval records: {attr} differs ({va!r} in {a_name}, {vb!r} in {b_name}); "
                "scores are compared only between identical task versions, few-shot counts, limits, "
                "batch size and dtype"
            )
