"""When a method does not fit: the cheapest changes that make it fit, re-estimated.

Every change below is applied to the candidate and the estimator is run again; only
changes whose new estimate fits are offered.  "Cheapest" means least given up, in this
order (CHANGES is ordered by it): compute first (recompute, smaller micro-batch), then
optimizer precision, then data (truncation), then the method, then money (more GPUs),
and last the model itself.  Each fix also shows its time and cost.

If no single change fits, the memory-saving changes that lower the estimate are stacked
in the same order until it fits, and the stack is offered as one fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.context import Candidate, Situation
from advisor.scaleout import OFFLOAD_WHY, SHARDING_WHY, nodes_for
from tunewise.methods import Method
from tunewise.settings import TrainSettings

MIN_SEQ = 256
GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)  # beyond 8: several 8-GPU nodes (advisor/scaleout.py)
# The sharding ladder, least first: (strategy, zero_stage, cpu_offload, why this one).
LADDER = (
    ("ddp", 0, False, SHARDING_WHY[0]),
    ("deepspeed", 2, False, SHARDING_WHY[2]),
    ("fsdp", 3, False, SHARDING_WHY[3]),
    ("deepspeed", 3, True, f"no count up to the largest fits even fully sharded: {OFFLOAD_WHY}"),
)


@dataclass
class Trial:
    """A changed candidate: what to run instead, and its estimate once run."""

    change: str
    method: Method
    settings: TrainSettings
    gpus: int
    model: str | None = None  # None: the requested model
    spec: Any = None
    estimate: dict[str, Any] = field(default_factory=dict)
    nodes: int = 1  # set by _run: the nodes the estimate spread `gpus` over

    @property
    def fits(self) -> bool:
        return bool(self.estimate.get("fits")) and bool(self.estimate.get("supported", True))

    def to_dict(self, base: Candidate) -> dict[str, Any]:
        changed = {k: v for k, v in self.settings.__dict__.items() if getattr(base.settings, k) != v}
        est = self.estimate
        return {"change": self.change, "method": self.method.value, "gpus": self.gpus,
                "nodes": self.nodes,
                "model": self.model, "settings": changed, "fits": self.fits,
                "total_gib": est["memory_gib"]["total"], "time_hours": est.get("time_hours"),
                "cost_usd": est.get("cost_usd")}


def _run(s: Situation, trial: Trial) -> Trial:
    trial.estimate = s.estimate(trial.method, trial.settings, trial.gpus, trial.spec)
    trial.nodes = nodes_for(trial.gpus, s.nodes)  # as the Situation's estimate spreads them
    return trial


def _checkpointing(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
    if st.gradient_checkpointing:
        return None
    return Trial("gradient checkpointing on (+~33% compute)", c.method, st.replace(gradient_checkpointing=True), gpus)


def _micro_batch(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
    if st.batch_size == 1:
        return None
    accum = st.grad_accum * st.batch_size  # keep the global batch
    return Trial(f"micro-batch 1 with grad accumulation {accum} (same global batch, slower)",
                 c.method, st.replace(batch_size=1, grad_accum=accum), gpus)


def _optimizer(name: str, label: str) -> Callable[..., Trial | None]:
    def change(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
        available = s.paged_optimizer if name.startswith("paged") else s.optimizer_8bit
        if not available or not c.method.trains or st.optimizer in (name, "paged-adamw-8bit"):
            return None
        return Trial(label, c.method, st.replace(optimizer=name), gpus)
    return change


def _shorter(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
    """The longest halving of seq_len (>= MIN_SEQ) that fits."""
    seq = st.seq_len // 2
    while seq >= MIN_SEQ:
        trial = _run(s, Trial("", c.method, st.replace(seq_len=seq), gpus))
        if trial.fits:
            cut = s.truncated(seq)
            trial.change = f"shorter sequences: seq_len {st.seq_len} -> {seq}" + (
                f" ({cut:.0%} of examples truncated)" if s.lengths else "")
            return trial
        seq //= 2
    return None


def _switch(target: Method, why: str) -> Callable[..., Trial | None]:
    def change(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
        ok_from = {Method.QLORA: (Method.LORA, Method.FULL), Method.LORA: (Method.FULL,)}
        other = s.candidates.get(target)
        if c.method not in ok_from[target] or other is None:
            return None
        return Trial(f"switch to {target.value} ({why})", target, other.settings, other.gpus)
    return change


def _more_gpus(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
    """The fewest GPUs (GPU_COUNTS, from the current count) and, at that count, the least
    sharding of LADDER that fit; CPU offload only if no count fits without it (it moves
    every step's weights over PCIe).  The change says why that strategy."""
    if s.device_kind != "gpu" or not c.method.trains:
        return None
    for offloading in (False, True):
        for n in (g for g in GPU_COUNTS if g >= gpus and g % s.nodes == 0):  # even over the nodes asked for
            for strategy, stage, offload, why in LADDER:
                if offload != offloading or (n == 1 and not offload) or \
                        (n == gpus and (stage, offload) <= (st.zero_stage, st.cpu_offload)):
                    continue  # one GPU: only offload changes anything; the current count: only more sharding
                accum = max(1, math.ceil(st.grad_accum * gpus / n))
                changed = st.replace(zero_stage=stage, strategy=strategy, cpu_offload=offload, grad_accum=accum)
                trial = _run(s, Trial("", c.method, changed, n))
                if trial.fits:
                    where = f"{n} x {s.hardware}" + (f" on {trial.nodes} nodes" if trial.nodes > 1 else "")
                    trial.change = f"{where} with {_layout(strategy, stage, offload)}: {why}"
                    return trial
    return None


def _layout(strategy: str, stage: int, offload: bool) -> str:
    name = {"ddp": "DDP", "fsdp": "FSDP full sharding (ZeRO-3)"}.get(strategy, f"DeepSpeed ZeRO-{stage}")
    return name + (" + CPU offload" if offload else "")


def scale_out(s: Situation, c: Candidate) -> dict[str, Any]:
    """The fewest GPUs and the strategy that make `c` fit (keeping its method and model), as
    one line and its numbers; or why nothing up to GPU_COUNTS[-1] GPUs does."""
    if c.fits or not c.method.trains or s.device_kind != "gpu":
        return {}
    trial = _more_gpus(s, c, c.settings, c.gpus)
    if trial is None:
        largest = GPU_COUNTS[-1]
        return {"fits": False, "line": f"{c.method.value}: no layout of up to {largest} x {s.hardware} fits "
                f"(DDP, ZeRO-2, FSDP/ZeRO-3, or ZeRO-3 + CPU offload within the assumed CPU RAM); "
                f"it needs a smaller model, QLoRA/LoRA, or larger GPUs"}
    fix = trial.to_dict(c)
    line = (f"{c.method.value}: {trial.change}; {fix['total_gib']:.1f} GiB/GPU, "
            f"{_hours(fix['time_hours'])}, {_usd(fix['cost_usd'])}")
    return {**fix, "fits": True, "line": line}


def _hours(hours: float | None) -> str:
    return "time unknown" if hours is None else (f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h")


def _usd(usd: float | None) -> str:
    return "cost unknown" if usd is None else f"${usd:,.2f}"


def _smaller_model(s: Situation, c: Candidate, st: TrainSettings, gpus: int) -> Trial | None:
    """The largest smaller catalog model (same family first) that fits."""
    for name, spec in s.smaller_models:
        trial = _run(s, Trial("", c.method, st, gpus, model=name, spec=spec))
        if trial.fits:
            trial.change = f"a smaller model: {name} ({getattr(spec, 'params', 0) / 1e9:.1f}B parameters)"
            return trial
    return None


# Ordered cheapest first.  `stack` marks the memory-saving settings changes that are
# combined when no single change is enough.
CHANGES: tuple[tuple[str, Callable[..., Trial | None], bool], ...] = (
    ("checkpointing", _checkpointing, True),
    ("micro-batch", _micro_batch, True),
    ("8bit-optimizer", _optimizer("adamw-8bit", "8-bit AdamW (bitsandbytes): optimizer states 8 -> 2 bytes/parameter"), True),
    ("paged-optimizer", _optimizer("paged-adamw-8bit", "paged 8-bit AdamW: 8-bit states, spikes paged to CPU"), True),
    ("shorter-sequences", _shorter, False),
    ("qlora", _switch(Method.QLORA, "4-bit NF4 base; adapters train in 16-bit"), False),
    ("lora", _switch(Method.LORA, "train adapters only; full FT's gradients and optimizer states go away"), False),
    ("more-gpus", _more_gpus, False),
    ("smaller-model", _smaller_model, False),
)


def cheapest_fixes(s: Situation, c: Candidate) -> list[dict[str, Any]]:
    """Fits-making changes for candidate `c`, cheapest first (empty if it already fits)."""
    if c.fits:
        return []
    fixes = []
    for _, change, _ in CHANGES:
        trial = change(s, c, c.settings, c.gpus)
        if trial is None:
            continue
        if not trial.estimate:
            _run(s, trial)
        if trial.fits:
            fixes.append(trial.to_dict(c))
    if fixes:
        return fixes
    stacked = _stack(s, c)
    return [stacked.to_dict(c)] if stacked is not None else []


def _stack(s: Situation, c: Candidate) -> Trial | None:
    """Stack the stackable changes that lower the estimate, in order, stopping once it fits;
    if they are not enough, add shorter sequences, then more GPUs, then a smaller model."""
    st, labels, total = c.settings, [], c.total_gib
    for _, change, stack in CHANGES:
        trial = change(s, c, st, c.gpus) if stack else None
        if trial is None or _run(s, trial).estimate["memory_gib"]["total"] >= total:
            continue
        st, labels, total = trial.settings, labels + [trial.change], trial.estimate["memory_gib"]["total"]
        if trial.fits:
            trial.change = " + ".join(labels)
            return trial
    for final in (_shorter, _more_gpus, _smaller_model):
        trial = final(s, c, st, c.gpus)
        if trial is not None and trial.fits:
            trial.change = " + ".join(labels + [trial.change])
            return trial
    return None
