"""`advise`: profile the data, estimate every method, let the rules choose, write the plan.

    AdviceRequest --advise()--> Advice --to_dict()--> advice/v1 JSON
                                       --plan-----> tunewise.plan.Plan (plan.yaml)

Every method (prompt, lora, qlora, full, dpo, rlhf) gets its own derived settings
(advisor.hyperparams), an estimate (advisor.estimate) and a verdict; advisor.policy picks
one; advisor.fixes lists the cheapest changes that make a non-fitting pick fit.
The data profile and the fixes are imported only when used: `advise` must start fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.context import Candidate, Situation, normalise_goal, unsupported_reason
from advisor.hyperparams import derive_settings
from advisor.policy import Choice, choose, data_wants_full
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.schema import check_number
from tunewise.settings import sharding_conflict

if TYPE_CHECKING:
    from advisor.calibration import Calibration
    from advisor.data_profile import DataProfile
    from tunewise.plan import Plan

VERDICTS = ("recommended", "viable", "unsupported", "does-not-fit", "over-budget", "too-slow", "wrong-data",
            "too-little-data")


@dataclass(frozen=True)
class AdviceRequest:
    """What the user asked: model, device, data, constraints, and settings they fixed."""

    model: str
    gpu: str | None = None
    gpu_mem_gib: float | None = None
    gpus: int = 1
    nodes: int = 1  # machines the GPUs are spread over (advisor/scaleout.py)
    data: str | None = None
    eval_data: str | None = None
    examples: int | None = None  # without --data: plan for this many examples
    tokens_per_example: float | None = None  # without --data
    budget_usd: float | None = None
    max_hours: float = 72.0  # a training run longer than this is not offered as a plan
    tasks: int = 1
    goal: str | None = None  # knowledge | style | preference (aliases: skill, format, safety)
    preserve_general: bool = False
    method: Method | None = None  # force a method
    online_rl: bool = False  # an explicit reward model / online RL is needed: RLHF over DPO
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainSettings fields set by the user
    price_usd_per_hour: float | None = None
    hardware_file: str | None = None
    tokenizer: str | None = None  # a tokenizer.json; default: found next to a local model
    calibrate_from: tuple[str, ...] = ()  # run folders / records / history files (advisor/calibration.py)
    history: bool = True  # also learn from the local run history (advisor/run_history.py)

    def __post_init__(self) -> None:
        for name in ("gpus", "nodes", "tasks", "examples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"must be positive, got {value}", field=name)
        for name in ("budget_usd", "max_hours", "gpu_mem_gib", "tokens_per_example", "price_usd_per_hour"):
            check_number(name, getattr(self, name), optional=True)
        strategy, stage = self.overrides.get("strategy"), self.overrides.get("zero_stage")
        if strategy is not None and stage is not None and (conflict := sharding_conflict(strategy, stage)):
            raise InputError(conflict, field="zero_stage")
        if self.eval_data and not self.data:
            raise InputError("--eval-data needs --data (the overlap is train vs eval)", field="eval_data")
        normalise_goal(self.goal)
        from advisor.scaleout import check_layout

        check_layout(self.gpus, self.nodes)


@dataclass
class Advice:
    method: Method
    rule: str
    reasons: list[str]
    notes: list[str]
    candidates: dict[Method, Candidate]
    fixes: dict[Method, list[dict[str, Any]]]
    profile: DataProfile | None
    model: dict[str, Any]
    hardware: dict[str, Any]
    request: AdviceRequest
    plan_path: str | None = None
    calibration: Calibration | None = None
    # methods that do not fit as asked -> the fewest GPUs and the strategy that make them fit
    scale_out: dict[Method, dict[str, Any]] = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.method]

    def hyperparameters(self) -> dict[str, Any]:
        return {d.field: d.value for d in self.chosen.derivations}

    @property
    def plan(self) -> Plan:
        """The chosen method as a tunewise.plan.Plan (built on demand: most calls only print)."""
        from tunewise.plan import DataSpec, HardwareSpec, Plan

        req, profile, chosen = self.request, self.profile, self.chosen
        return Plan(
            method=self.method, model=req.model,
            data=DataSpec(train=req.data, eval=req.eval_data, format=profile.format if profile else None),
            settings=chosen.settings,
            hardware=HardwareSpec(self.hardware["name"], self.hardware["count"], self.hardware["memory_gib"]),
            estimate=chosen.estimate, reasons=self.reasons + self.notes,
        )

    def write_plan(self, path: str | Path) -> Path:
        """Write plan.yaml atomically; data paths are stored relative to the plan's folder.
        A method that cannot run on this hardware as set (`run` would refuse it) is not written."""
        if not self.chosen.supported:
            raise InputError(f"plan not written: {self.method.value} cannot run here "
                             f"({unsupported_reason(self.chosen.estimate)})", path=path)
        path = Path(path)
        data = self.plan.data
        rel = {k: _relative(v, path.parent) for k, v in (("train", data.train), ("eval", data.eval))}
        from dataclasses import replace

        model = self.plan.model
        if Path(model).expanduser().is_dir():  # a local folder, not a hub id: relative like the data
            model = _relative(model, path.parent)
        written = replace(self.plan, model=model, data=replace(data, **rel)).write(path)
        self.plan_path = str(path)
        return written

    def to_dict(self) -> dict[str, Any]:
        from tunewise.schema import stamp

        candidates = []
        for cand in self.candidates.values():
            candidates.append({**cand.estimate, "verdict": cand.verdict, "verdict_reason": cand.verdict_reason,
                               "derivations": [d.to_dict() for d in cand.derivations]})
        return stamp("advice", {
            "model": self.model, "hardware": self.hardware,
            "recommendation": {
                "method": self.method.value, "rule": self.rule, "reasons": self.reasons, "notes": self.notes,
                "hyperparameters": self.hyperparameters(),
                "derivations": [d.to_dict() for d in self.chosen.derivations],
                "fixes": self.fixes.get(self.method, []),
            },
            "candidates": candidates,
            "fixes": {m.value: f for m, f in self.fixes.items()},
            "data": self.profile.to_dict() if self.profile else None,
            "plan": self.plan_path,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "scale_out": {m.value: d for m, d in self.scale_out.items()},
        })


def advise(request: AdviceRequest) -> Advice:
    """Answer one request; raises InputError for bad input (unknown model/GPU, bad data)."""
    from advisor.hardware import resolve_hardware
    from advisor.models import resolve_model

    spec = resolve_model(request.model)
    if "lora_rank" in request.overrides:  # a rank the user gave: refuse one beyond the model's sizes
        from advisor.estimate import check_lora_rank
        from tunewise.settings import TrainSettings

        targets = request.overrides.get("lora_targets") or "all-linear"
        check_lora_rank(spec, Method.LORA, TrainSettings(lora_rank=request.overrides["lora_rank"],
                                                         lora_targets=targets))
    hw = resolve_hardware(request.gpu, request.gpu_mem_gib, catalog_path=request.hardware_file)
    profile = _profile(request)
    calibration = _calibration(request, hw)
    s = _situation(request, spec, hw, profile, calibration)
    choice = decide(s)
    fixes = _fixes(s, choice.method, spec)
    hardware = {"name": hw.name, "count": s.gpus, "memory_gib": hw.memory_gib, "kind": hw.kind}
    notes = choice.notes + (calibration.summary() if calibration else [])
    return Advice(choice.method, choice.rule, choice.reasons, notes, s.candidates, fixes, profile,
                  spec.summary(), hardware, request, calibration=calibration, scale_out=_scale_out(s))


def _scale_out(s: Situation) -> dict[Method, dict[str, Any]]:
    """For every training method that does not fit as asked: the fewest GPUs and the strategy."""
    if s.device_kind != "gpu" or all(c.fits or not c.method.trains for c in s.candidates.values()):
        return {}
    from advisor.fixes import scale_out

    plans = {m: scale_out(s, c) for m, c in s.candidates.items() if c.supported}
    return {m: p for m, p in plans.items() if p}


def _calibration(request: AdviceRequest, hw: Any) -> Calibration | None:
    """What measured runs on this hardware teach (None when there is nothing to read)."""
    if not request.calibrate_from and not request.history:
        return None
    if not request.calibrate_from:
        from advisor.run_history import default_sources

        if not default_sources():  # no history, no ./runs: skip importing the fitting code
            return None
    from advisor.calibration import load_calibration

    return load_calibration(hw, request.calibrate_from, history=request.history,
                            catalog_path=request.hardware_file)


def decide(s: Situation) -> Choice:
    """Derive settings and an estimate for every method, choose one, give each a verdict."""
    for method in Method:
        settings, derivations = derive_settings(s, method)
        estimate = s.estimate(method, settings, s.gpus, None)
        s.candidates[method] = Candidate(method, settings, s.gpus, estimate, derivations)
    choice = choose(s)
    for method, cand in s.candidates.items():
        cand.verdict, cand.verdict_reason = _verdict(s, cand, method is choice.method)
    return choice


def _profile(request: AdviceRequest) -> DataProfile | None:
    if not request.data:
        return None
    # only with data: keeps startup lean
    from advisor.data_profile import problem_line, profile_data

    tokenizer = request.tokenizer or find_tokenizer(request.model)
    profile = profile_data(request.data, eval_path=request.eval_data, tokenizer_path=tokenizer)
    if profile.problems:
        # `run` reads data strictly, so a plan over a file with bad rows would fail later.
        first, rest = profile.problems[0], profile.problems[1:]
        lines = ", ".join(str(p.line) for p in rest[:5]) + (", ..." if len(rest) > 5 else "")
        also = f" (also bad: {len(rest)} more row(s), line {lines})" if rest else ""
        raise InputError(f"{problem_line(request.data, first)}{also}")
    if profile.rows == 0:
        raise InputError("no valid examples", path=request.data)
    needs_pairs = request.method in (Method.DPO, Method.RLHF)
    if needs_pairs and profile.format != "preference":
        raise InputError(f"--method {request.method.value} needs prompt/chosen/rejected pairs; "
                         f"this file is {profile.format}", path=request.data, field="chosen")
    if request.method in (Method.LORA, Method.QLORA, Method.FULL) and profile.format == "preference":
        raise InputError(f"--method {request.method.value} trains on prompt/completion, messages or text; this "
                         "file is preference pairs (use --method dpo, or rlhf)", path=request.data, field="method")
    return profile


def _situation(request: AdviceRequest, spec: Any, hw: Any, profile: DataProfile | None,
               calibration: Calibration | None = None) -> Situation:
    from advisor.estimate import estimate as run_estimate
    from advisor.memory import MemoryKnobs
    from advisor.scaleout import nodes_for

    memo: dict[tuple, dict[str, Any]] = {}  # rules ask for the same configuration repeatedly

    def estimate(method: Method, settings: Any, gpus: int, other_spec: Any) -> dict[str, Any]:
        key = (method, settings, gpus, other_spec.name if other_spec is not None else None)
        if key not in memo:
            memo[key] = _estimate(method, settings, gpus, other_spec)
        return memo[key]

    def _estimate(method: Method, settings: Any, gpus: int, other_spec: Any) -> dict[str, Any]:
        examples, avg = request.examples, request.tokens_per_example
        if profile is not None:
            examples, avg = profile.rows, profile.mean_tokens(settings.seq_len)
        if examples is not None and method.trains and settings.replay:
            examples = math.ceil(examples / (1 - settings.replay))  # replayed general rows are trained on too
        knobs = MemoryKnobs(preference_adapter=settings.dpo_lora is not False)  # DPO/RLHF: adapter unless told
        nodes = nodes_for(gpus, request.nodes)
        return run_estimate(other_spec or spec, method, hw, settings, gpus=gpus, nodes=nodes, examples=examples,
                            avg_tokens_per_example=avg, price_usd_per_hour=request.price_usd_per_hour,
                            knobs=knobs, calibration=calibration).to_dict()

    s = Situation(
        model=spec.name, params=spec.params, max_position=spec.max_position, hardware=hw.name,
        memory_gib=round(hw.usable_gib, 2), gpus=request.gpus, bf16=hw.bf16, device_kind=hw.kind,
        estimate=estimate, paged_optimizer=hw.paged_optimizer, optimizer_8bit=hw.bnb_8bit_optimizer,
        goal=normalise_goal(request.goal), tasks=request.tasks, budget_usd=request.budget_usd,
        max_hours=request.max_hours, preserve_general=request.preserve_general, forced=request.method,
        online_rl=request.online_rl, nodes=request.nodes,
        overrides=dict(request.overrides), examples=request.examples,
    )
    if profile is not None:
        s.examples, s.format = profile.examples, profile.format
        s.data_verdicts, s.lengths = profile.verdicts, profile.lengths
        if profile.tokens is not None:
            s.lengths_p95, s.lengths_max = profile.tokens.p95, profile.tokens.max
    elif request.tokens_per_example:
        s.lengths_p95 = s.lengths_max = math.ceil(request.tokens_per_example)
    return s


def _verdict(s: Situation, cand: Candidate, chosen: bool) -> tuple[str, str]:
    """The first verdict that applies (VERDICTS order after 'recommended'), with its reason."""
    data = s.data_verdicts.get(cand.method)
    problems = [
        (not cand.supported, "unsupported", unsupported_reason(cand.estimate)),
        (not cand.fits, "does-not-fit", s.why_not(cand.method)),
        (not s.within_budget(cand.method), "over-budget", s.why_not(cand.method)),
        (not s.within_time(cand.method), "too-slow", s.why_not(cand.method)),
        (data is not None and data.verdict == "wrong-format", "wrong-data", data.reason if data else ""),
        (data is not None and data.verdict == "insufficient", "too-little-data", data.reason if data else ""),
    ]
    if chosen:
        issues = "; ".join(dict.fromkeys(reason for bad, _, reason in problems if bad))
        return "recommended", issues or "chosen by the policy; see the reasons"
    for bad, verdict, reason in problems:
        if bad:
            return verdict, reason
    return "viable", data.reason if data else ("fits and is within the budget" if s.budget_usd is not None else "fits")


def _fixes(s: Situation, chosen: Method, spec: Any) -> dict[Method, list[dict[str, Any]]]:
    """Fixes for the pick if it does not fit, and for full FT when the data asked for it."""
    wanted = [chosen]
    if chosen is not Method.FULL and data_wants_full(s) \
            and s.forced is None and s.format != "preference":
        wanted.append(Method.FULL)
    if not any(not s.candidates[m].fits for m in wanted):
        return {}
    from advisor.fixes import cheapest_fixes

    s.smaller_models = _smaller_models(spec)
    return {m: cheapest_fixes(s, s.candidates[m]) for m in wanted if not s.candidates[m].fits}


def _smaller_models(spec: Any) -> list[tuple[str, Any]]:
    """Catalog models smaller than `spec`: same family first, then the rest, largest first."""
    from advisor.models import catalog_ids, resolve_model

    others = [resolve_model(name) for name in catalog_ids()]
    smaller = [o for o in others if o.params < spec.params and o.name != spec.name]
    smaller.sort(key=lambda o: (o.family != spec.family, -o.params))
    return [(o.name, o) for o in smaller]


def find_tokenizer(model: str) -> str | None:
    """The model's tokenizer.json if it is on disk: a model folder, or the local HF cache."""
    path = Path(model).expanduser()
    if path.exists():
        folder = path if path.is_dir() else path.parent
        candidate = folder / "tokenizer.json"
        return str(candidate) if candidate.is_file() else None
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")
    snapshots = Path(hub) / f"models--{model.replace('/', '--')}" / "snapshots"
    found = sorted(snapshots.glob("*/tokenizer.json"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if snapshots.is_dir() else []
    return str(found[0]) if found else None


def _relative(value: str | None, base: Path) -> str | None:
    if not value:
        return value
    try:
        return os.path.relpath(Path(value).resolve(), base.resolve())
    except ValueError:  # another drive on Windows
        return str(Path(value).resolve())
