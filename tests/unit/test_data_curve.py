"""The data-needs fit (advisor/data_curve.py): L(n) = a + b n^-c, target -> examples, bootstrap.

    .venv/bin/python -m pytest tests/unit/test_data_curve.py
"""

from __future__ import annotations

import math
import random

import pytest

from advisor.data_curve import Point, data_curve, fit_power_law

A, B, C = 1.5, 4.0, 0.4


def true_loss(n: float) -> float:
    return A + B * n ** (-C)


def points(sizes, *, examples=80, noise=0.3, seed=0) -> list[Point]:
    """Held-out examples with their own difficulty (shared by every size: paired, as in a real
    probe) plus a little per-run noise; 10 scored tokens each."""
    rng = random.Random(seed)
    difficulty = [rng.gauss(0, noise) for _ in range(examples)]
    out = []
    for n in sizes:
        losses = [10 * (true_loss(n) + d + rng.gauss(0, noise / 10)) for d in difficulty]
        out.append(Point(n, n // 4, losses, [10] * examples))
    return out


def test_exact_points_recover_the_law():
    fit = fit_power_law([250, 500, 1000, 2000], [true_loss(n) for n in (250, 500, 1000, 2000)])
    assert (fit.a, fit.b, fit.c) == pytest.approx((A, B, C), rel=0.03)
    assert fit.examples_for(true_loss(5000)) == pytest.approx(5000, rel=0.05)


def test_target_below_the_floor_is_unreachable():
    fit = fit_power_law([250, 500, 1000], [true_loss(n) for n in (250, 500, 1000)])
    assert fit.examples_for(fit.a - 0.01) == math.inf


def test_flat_or_rising_losses_mean_no_gain_from_data():
    fit = fit_power_law([100, 200, 400], [2.0, 2.05, 2.1])
    assert fit.b == 0 and fit.examples_for(1.9) == math.inf


def test_interval_brackets_the_true_answer_and_the_point_estimate():
    target = true_loss(4000)
    curve = data_curve(points([250, 500, 1000]), target_loss=target, bootstrap=300)
    low, high = curve.interval
    assert low <= curve.needed <= high
    assert low <= 4000 <= high
    assert curve.unreachable_share < 0.5
    d = curve.to_dict()
    assert d["more_examples"] == pytest.approx(curve.needed - 1000, abs=0.1)
    assert all(p["stderr"] > 0 for p in d["points"])


def test_more_held_out_examples_narrow_the_interval():
    target = true_loss(3000)
    few = data_curve(points([250, 500, 1000], examples=20, seed=3), target_loss=target, bootstrap=300)
    many = data_curve(points([250, 500, 1000], examples=400, seed=3), target_loss=target, bootstrap=300)

    def width(curve):
        low, high = curve.interval
        return math.log(high) - math.log(low) if math.isfinite(high) else math.inf

    assert width(many) < width(few)


def test_default_target_is_a_relative_improvement_on_the_largest_run():
    pts = points([250, 500, 1000])
    curve = data_curve(pts, target_improvement=0.05, bootstrap=50)
    assert curve.target == pytest.approx(pts[-1].loss * 0.95)
    assert "5% below" in curve.target_source


def test_one_size_is_not_a_curve():
    with pytest.raises(ValueError):
        data_curve(points([500, 500]))
