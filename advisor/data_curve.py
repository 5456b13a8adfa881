"""How much more data?  Fit held-out loss against training-set size and extrapolate.

Model (the data term of the Chinchilla loss, Hoffmann et al. 2022 eq. 2, at a fixed model):

    L(n) = a + b * n^(-c)        a >= 0 (the floor more data cannot lower), b >= 0, c > 0

Least squares over the measured points: for each c on a log grid (C_GRID) the model is
linear in (a, b), solved in closed form; the c with the smallest residual wins (a
profile likelihood over c, so no optimiser or scipy is needed).  With b = 0 the data gave
no measurable gain and the curve is flat.

Examples needed for a target loss T:  n(T) = (b / (T - a))^(1/c)  when T > a, else the
target is below the floor: unreachable by more data alone.

Uncertainty: a paired bootstrap over the held-out examples (Efron & Tibshirani 1993):
resample the held-out examples with replacement, recompute each point's token-weighted
loss from the same resampled examples, refit, recompute n(T).  The interval is the
(10th, 90th) percentile; the share of resamples in which the target is unreachable is
reported too.  This covers evaluation noise only: each size is trained once (one seed),
so training noise is not in the interval.  Pure standard library.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

C_GRID = tuple(0.02 * (100.0 ** (i / 119)) for i in range(120))  # 0.02 .. 2.0, log-spaced
BOOTSTRAP = 400
INTERVAL = (0.10, 0.90)


@dataclass(frozen=True)
class PowerLaw:
    a: float
    b: float
    c: float
    rss: float

    def loss(self, n: float) -> float:
        return self.a + self.b * n ** (-self.c)

    def examples_for(self, target: float) -> float:
        """Training examples for held-out loss `target` (inf when below the floor a)."""
        if self.b <= 0 or target <= self.a:
            return math.inf
        return (self.b / (target - self.a)) ** (1.0 / self.c)


@dataclass
class Point:
    """One short training run: its size and the held-out loss of every held-out example.

    losses[i], tokens[i]: summed token loss and scored tokens of held-out example i; the
    point's loss is sum(losses) / sum(tokens), as the Trainer averages (token-weighted).
    """

    examples: int
    steps: int
    losses: list[float]
    tokens: list[int]
    stderr: float | None = None  # bootstrap standard error of `loss` (set by data_curve)

    @property
    def loss(self) -> float:
        return sum(self.losses) / max(1, sum(self.tokens))


@dataclass
class DataCurve:
    points: list[Point]
    fit: PowerLaw
    target: float
    target_source: str
    examples_now: int
    needed: float  # examples for the target (inf: unreachable)
    interval: tuple[float, float]
    unreachable_share: float  # share of bootstrap resamples where the target is below the floor
    loss_at: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # n -> (fit, low, high)
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [{"examples": p.examples, "steps": p.steps, "heldout_loss": round(p.loss, 5),
                        "stderr": None if p.stderr is None else round(p.stderr, 5),
                        "heldout_examples": len(p.losses)} for p in self.points],
            "fit": {"form": "L(n) = a + b * n^-c", "a": self.fit.a, "b": self.fit.b, "c": self.fit.c},
            "target_loss": round(self.target, 5), "target_source": self.target_source,
            "examples_now": self.examples_now, "examples_needed": _finite(self.needed),
            "more_examples": _finite(self.needed - self.examples_now),
            "interval": [_finite(v) for v in self.interval], "interval_percentiles": list(INTERVAL),
            "unreachable_share": round(self.unreachable_share, 3),
            "predicted_loss": {str(n): [round(v, 5) for v in vals] for n, vals in self.loss_at.items()},
            "assumptions": list(self.assumptions),
        }


def fit_power_law(ns: list[float], losses: list[float]) -> PowerLaw:
    """Least-squares L(n) = a + b n^-c with a, b >= 0 (see module docstring)."""
    if len(ns) != len(losses) or len(ns) < 2:
        raise ValueError("need at least two (examples, loss) points")
    best = None
    for c in C_GRID:
        xs = [n ** (-c) for n in ns]
        a, b = _linear_fit(xs, losses)
        rss = sum((a + b * x - y) ** 2 for x, y in zip(xs, losses, strict=True))
        if best is None or rss < best.rss - 1e-15:
            best = PowerLaw(a, b, c, rss)
    return best


def _linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """min sum (a + b x - y)^2 subject to a >= 0, b >= 0 (checking the boundary cases)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx > 0 else 0.0
    a = my - b * mx
    if b >= 0 and a >= 0:
        return a, b
    candidates = [(max(0.0, my), 0.0)]  # flat: no gain from data
    sxx0 = sum(x * x for x in xs)
    if sxx0 > 0:
        candidates.append((0.0, max(0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sxx0)))  # no floor
    return min(candidates, key=lambda ab: sum((ab[0] + ab[1] * x - y) ** 2 for x, y in zip(xs, ys, strict=True)))


def data_curve(points: list[Point], *, target_loss: float | None = None, target_improvement: float = 0.1,
               bootstrap: int = BOOTSTRAP, seed: int = 0) -> DataCurve:
    """Fit the points, answer "how many examples for the target", with a bootstrap interval.

    The target is `target_loss`, else the largest run's loss lowered by `target_improvement`
    (a fraction: 0.1 = 10% lower held-out loss).
    """
    points = sorted(points, key=lambda p: p.examples)
    if len(points) < 2 or len({p.examples for p in points}) < 2:
        raise ValueError("need runs of at least two different sizes")
    ns = [float(p.examples) for p in points]
    fit = fit_power_law(ns, [p.loss for p in points])
    now = points[-1]
    if target_loss is None:
        target, source = now.loss * (1 - target_improvement), f"{target_improvement:.0%} below the loss at {now.examples:,} examples"
    else:
        target, source = target_loss, "--target-loss"
    horizon = [now.examples * k for k in (2, 4, 10)]
    needed, predicted = _bootstrap(points, ns, target, horizon, bootstrap, seed)
    finite = sorted(v for v in needed if math.isfinite(v))
    unreachable = 1 - len(finite) / max(1, len(needed))
    interval = (_quantile(sorted(needed), INTERVAL[0]), _quantile(sorted(needed), INTERVAL[1]))
    loss_at = {n: (fit.loss(n), _quantile(sorted(v), INTERVAL[0]), _quantile(sorted(v), INTERVAL[1]))
               for n, v in zip(horizon, predicted, strict=True)}
    return DataCurve(points, fit, target, source, now.examples, fit.examples_for(target), interval, unreachable,
                     loss_at, _assumptions(points, bootstrap))


def _bootstrap(points: list[Point], ns: list[float], target: float, horizon: list[int], rounds: int,
               seed: int) -> tuple[list[float], list[list[float]]]:
    """Paired resampling of the held-out examples (the same indices for every point)."""
    rng = random.Random(seed)
    m = min(len(p.losses) for p in points)
    needed: list[float] = []
    predicted: list[list[float]] = [[] for _ in horizon]
    per_point: list[list[float]] = [[] for _ in points]
    for _ in range(rounds):
        idx = [rng.randrange(m) for _ in range(m)]
        losses = [sum(p.losses[i] for i in idx) / max(1, sum(p.tokens[i] for i in idx)) for p in points]
        for k, loss in enumerate(losses):
            per_point[k].append(loss)
        fit = fit_power_law(ns, losses)
        needed.append(fit.examples_for(target))
        for k, n in enumerate(horizon):
            predicted[k].append(fit.loss(n))
    for point, values in zip(points, per_point, strict=True):
        point.stderr = statistics.stdev(values) if len(values) > 1 else None
    return needed, predicted


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values (inf, "unreachable", sorts last and may be the answer)."""
    if not sorted_values:
        return math.nan
    return sorted_values[round(q * (len(sorted_values) - 1))]


def _assumptions(points: list[Point], rounds: int) -> list[str]:
    sizes = ", ".join(f"{p.examples:,}" for p in points)
    return [
        f"L(n) = a + b n^-c fitted by least squares to held-out loss after training on {sizes} examples",
        f"interval: {INTERVAL[0]:.0%}-{INTERVAL[1]:.0%} percentiles of {rounds} paired bootstrap resamples of "
        f"the {min(len(p.losses) for p in points)} held-out examples (evaluation noise; one training seed per size)",
        "extrapolation assumes the same model, settings and kind of data; it is least reliable far beyond the "
        "largest run",
    ]


def _finite(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None

