"""What the policy rules look at: the situation, and one estimated candidate per method.

Rules never call the estimator module directly: they call `Situation.estimate`, a
function the caller injects (advisor.advise passes advisor.estimate.estimate; tests pass
small fakes).  It returns the DESIGN.md "Estimate" mapping (estimate/v1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunewise.methods import Method
from tunewise.settings import TrainSettings

GOALS = ("knowledge", "style", "preference")
# Plans keep 10% of device memory free: estimates err (benchmarks/estimate_accuracy) and
# allocators fragment.  A candidate above it still "fits", but only tightly.
HEADROOM = 0.9
GOAL_ALIASES = {"skill": "knowledge", "format": "style", "safety": "preference"}

# estimate(method, settings, gpus, model) -> estimate/v1 dict; model None = the requested one
EstimateFn = Callable[[Method, TrainSettings, int, Any], dict[str, Any]]


@dataclass(frozen=True)
class Derivation:
    """One derived value and the rule that set it."""

    field: str
    value: Any
    rule: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "rule": self.rule, "reason": self.reason}


@dataclass
class Candidate:
    """A method with the settings derived for it and their estimate."""

    method: Method
    settings: TrainSettings
    gpus: int
    estimate: dict[str, Any]
    derivations: list[Derivation] = field(default_factory=list)
    verdict: str = ""
    verdict_reason: str = ""

    @property
    def fits(self) -> bool:
        return bool(self.estimate.get("fits")) and self.supported

    @property
    def supported(self) -> bool:
        return bool(self.estimate.get("supported", True))

    @property
    def total_gib(self) -> float:
        return float(self.estimate["memory_gib"]["total"])

    @property
    def cost_usd(self) -> float | None:
        return self.estimate.get("cost_usd")

    @property
    def time_hours(self) -> float | None:
        return self.estimate.get("time_hours")


@dataclass
class Situation:
    """Everything the rules may look at.  `examples` counts unique valid examples."""

    model: str
    params: int  # total parameters of the model
    max_position: int
    hardware: str
    memory_gib: float  # per device
    gpus: int
    bf16: bool  # the device computes in bf16
    device_kind: str  # gpu | apple | cpu
    estimate: EstimateFn
    paged_optimizer: bool = True  # bitsandbytes paged optimizers work here (CUDA)
    optimizer_8bit: bool = True  # bitsandbytes 8-bit optimizers work here
    examples: int | None = None  # None: unknown (no data given)
    format: str | None = None  # prompt_completion | messages | text | preference
    lengths_p95: int | None = None  # tokens, from the data profile
    lengths_max: int | None = None
    lengths: list[int] = field(default_factory=list)  # tokens per example (for truncation shares)
    smaller_models: list[tuple[str, Any]] = field(default_factory=list)  # (name, spec), largest first
    goal: str | None = None  # knowledge | style | preference
    tasks: int = 1
    budget_usd: float | None = None
    max_hours: float = 72.0  # longer training runs are not a practical plan (see ok())
    preserve_general: bool = False
    forced: Method | None = None
    online_rl: bool = False  # the user needs an explicit reward model / online RL (--online-rl)
    nodes: int = 1  # nodes the user asked for (--num-nodes); more GPUs are trialled in multiples of it
    overrides: dict[str, Any] = field(default_factory=dict)  # settings the user set
    data_verdicts: dict[Method, Any] = field(default_factory=dict)  # Method -> Verdict
    candidates: dict[Method, Candidate] = field(default_factory=dict)

    def truncated(self, seq_len: int) -> float:
        """Share of examples longer than seq_len (0 when unknown)."""
        return sum(1 for n in self.lengths if n > seq_len) / len(self.lengths) if self.lengths else 0.0

    def within_budget(self, method: Method) -> bool:
        cost = self.candidates[method].cost_usd
        return self.budget_usd is None or cost is None or cost <= self.budget_usd

    def within_time(self, method: Method) -> bool:
        hours = self.candidates[method].time_hours
        return hours is None or hours <= self.max_hours

    def ok(self, method: Method) -> bool:
        """Supported, fits in memory, within the budget, and done within max_hours.

        The time limit is what makes "a 16 GB laptop cannot fine-tune a 7B model" true
        even where a 4-bit base would squeeze into its RAM: days of CPU training are not
        a plan.
        """
        cand = self.candidates.get(method)
        return cand is not None and cand.fits and self.within_budget(method) and self.within_time(method)

    def roomy(self, method: Method) -> bool:
        """ok() with HEADROOM to spare."""
        return self.ok(method) and self.candidates[method].total_gib <= HEADROOM * self.memory_gib

    def why_not(self, method: Method) -> str:
        """Why `method` is not ok, in a few words (for the reasons of the rule that skipped it)."""
        cand = self.candidates[method]
        if not cand.supported:
            return f"{method.value} is unsupported here ({unsupported_reason(cand.estimate)})"
        if not cand.fits:
            return f"{method.value} needs {cand.total_gib:.1f} GiB per device, over the {self.memory_gib:g} GiB available"
        if not self.within_budget(method):
            return f"{method.value} would cost ${cand.cost_usd:,.2f}, over the ${self.budget_usd:,.2f} budget"
        if not self.within_time(method):
            return f"{method.value} would train for {cand.time_hours:,.0f} h, over the {self.max_hours:g} h limit (--max-hours)"
        if cand.total_gib > HEADROOM * self.memory_gib:
            return (f"{method.value} fits only tightly ({cand.total_gib:.1f} of {self.memory_gib:g} GiB, "
                    f"above the {HEADROOM:.0%} a plan should use)")
        return f"{method.value} fits"


def unsupported_reason(estimate: dict[str, Any]) -> str:
    for key in ("unsupported_reason", "supported_reason", "reason"):
        if estimate.get(key):
            return str(estimate[key])
    return "see the estimate's warnings"


def normalise_goal(goal: str | None) -> str | None:
    """The canonical goal name, or None; raises InputError for an unknown one."""
    if goal is None:
        return None
    from tunewise.errors import InputError

    value = goal.strip().lower()
    value = GOAL_ALIASES.get(value, value)
    if value not in GOALS:
        names = ", ".join(GOALS + tuple(GOAL_ALIASES))
        raise InputError(f"unknown goal {goal!r}; choose one of: {names}", field="goal")
    return value
