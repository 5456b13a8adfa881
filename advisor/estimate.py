"""One estimate: memory per device, fit, time and cost for a method on given hardware.

`estimate()` is the single entry point used by `tunewise estimate` and by the policy for
every candidate method.  `Estimate.to_dict()` is the "Estimate" artifact of DESIGN.md
(`tunewise/estimate/v1`): the parts of `memory_gib` are per device and sum to `total`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from advisor import compute, memory, scaleout
from advisor.hardware import Hardware
from advisor.lora import AdapterPlan, plan_adapter
from advisor.memory import MemoryBreakdown, MemoryKnobs
from advisor.models import ModelSpec
from advisor.support import hardware_warnings, unsupported_reason
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.schema import check_number, stamp
from tunewise.settings import MAX_GPUS, TrainSettings

if TYPE_CHECKING:
    from advisor.calibration import Calibration


@dataclass
class Estimate:
    """Everything `tunewise estimate` reports for one configuration."""

    model: ModelSpec
    method: Method
    hardware: Hardware
    gpus: int
    settings: TrainSettings
    trainable_params: int
    memory: MemoryBreakdown
    fits: bool
    supported: bool
    reason: str | None
    tokens: int | None
    time_hours: float | None
    cost_usd: float | None
    assumptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def memory_gib(self) -> dict[str, float]:
        return self.memory.to_dict()

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return stamp("estimate", {
            "model": self.model.summary(),
            "method": str(self.method),
            "hardware": self.hardware.summary(self.gpus),
            "settings": {
                "batch_size": s.batch_size, "seq_len": s.seq_len,
                "gradient_checkpointing": s.gradient_checkpointing, "lora_rank": s.lora_rank,
                "lora_targets": s.lora_targets, "optimizer": s.optimizer, "precision": s.precision,
                "zero_stage": s.zero_stage,
            },
            "trainable_params": self.trainable_params,
            "memory_gib": self.memory_gib,
            "fits": self.fits,
            "supported": self.supported,
            "reason": self.reason,
            "tokens": self.tokens,
            "time_hours": _round(self.time_hours, 4),
            "cost_usd": _round(self.cost_usd, 4),
            "assumptions": list(self.assumptions),
            "warnings": list(self.warnings),
        })


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def estimate(  # noqa: PLR0913 - the advisor's contract signature (INTERFACES)
    spec: ModelSpec,
    method: Method,
    hardware: Hardware,
    settings: TrainSettings,
    *,
    gpus: int = 1,
    tokens: int | None = None,
    examples: int | None = None,
    avg_tokens_per_example: float | None = None,
    price_usd_per_hour: float | None = None,
    knobs: MemoryKnobs | None = None,
    calibration: Calibration | None = None,
    nodes: int = 1,
    inter_node: str = scaleout.DEFAULT_INTER_NODE,
) -> Estimate:
    """Memory, fit, time and cost of training `spec` with `method` (see module docstring).

    tokens: training tokens per epoch (else examples x avg_tokens_per_example, where
    avg defaults to seq_len).  For DPO an example is a pair and counts twice.
    calibration: MFU and memory corrections measured on this hardware
    (advisor/calibration.py); each one applied is stated in `assumptions`.
    gpus: every GPU (accelerate's num_processes), spread evenly over `nodes`; how they
    shard and communicate: advisor/scaleout.py (`inter_node`: a key of INTER_NODE).
    """
    method = Method(method)
    knobs = knobs or MemoryKnobs()
    _check_sizes(gpus, tokens, examples, avg_tokens_per_example, price_usd_per_hour)
    scaleout.check_layout(gpus, nodes)
    adapter = _adapter(spec, method, settings, knobs)
    # evaluation spreads a model over one node's GPUs (evals/harness.py), training over all
    per_model = scaleout.gpus_per_node(gpus, nodes) if method is Method.PROMPT else gpus
    mem = memory.estimate_memory(spec, method, settings, hardware, adapter, gpus=per_model, knobs=knobs)
    learned = _calibrated(calibration, spec, method, hardware, gpus, mem)
    mem = learned.memory
    reason = unsupported_reason(method, settings, hardware, gpus)
    usable = hardware.usable_gib
    paged_fit = mem.total - mem.pageable <= usable
    shard = scaleout.Sharding.of(settings, gpus)
    fits = reason is None and (mem.total <= usable or paged_fit) and scaleout.host_ram_ok(mem, hardware, gpus, nodes)
    # time runs at the length a sequence really has (shorter unpacked examples), memory at seq_len
    run_settings = settings.replace(seq_len=compute.sequence_len(settings, avg_tokens_per_example))
    total_tokens, token_note = _tokens(method, run_settings, tokens, examples, avg_tokens_per_example, gpus)
    uses_adapter = adapter is not None
    trainable = _trainable(spec, method, adapter, knobs)
    comm = _comm_plan(spec, method, settings, hardware, shard, trainable=trainable, with_adapter=uses_adapter,
                      knobs=knobs, nodes=nodes, inter_node=inter_node)
    timing = compute.training_time(spec, method, run_settings, hardware, tokens=total_tokens, gpus=gpus,
                                   adapter=uses_adapter, precompute_reference=knobs.precompute_reference,
                                   mfu=learned.mfu, rlhf=_rlhf_timing(settings, knobs, examples, gpus), comm=comm)
    price = price_usd_per_hour if price_usd_per_hour is not None else hardware.usd_per_hour
    cost = None if timing.hours is None or price is None else timing.hours * price * gpus
    est = Estimate(
        model=spec, method=method, hardware=hardware, gpus=gpus, settings=settings,
        trainable_params=trainable, memory=mem, fits=fits,
        supported=reason is None, reason=reason, tokens=total_tokens, time_hours=timing.hours,
        cost_usd=cost,
    )
    source = "--price" if price_usd_per_hour is not None else f"{hardware.price_source} {hardware.price_date}".strip()
    return _explain(est, shard, knobs, timing, learned, token_note=token_note, price=(price, source), nodes=nodes,
                    inter_node=inter_node)


def _explain(est: Estimate, shard, knobs, timing, learned, *, token_note, price, nodes, inter_node) -> Estimate:  # noqa: PLR0913
    """Fill the estimate's warnings and assumptions (a calibrated MFU replaces the default line)."""
    est.warnings = _warnings(est, price[0]) + scaleout.layout_warnings(shard, est.memory, est.hardware, est.gpus,
                                                                       nodes, est.settings)
    est.assumptions = _assumptions(est, knobs, timing, token_note, price)
    est.assumptions += scaleout.layout_assumptions(shard, est.method, est.hardware, timing, gpus=est.gpus,
                                                   nodes=nodes, inter_node=inter_node)
    if learned.notes:  # the calibrated MFU replaces the default MFU line; memory adds one
        est.assumptions = [*learned.notes] + [a for a in est.assumptions if not a.startswith("MFU ")
                                           or learned.mfu is None]
    _drop_overflow(est)
    return est


def _drop_overflow(est: Estimate) -> None:
    """Finite but absurd inputs (a price of 1e300 $/h) can overflow time x price to infinity:
    report no time/cost and say why, instead of printing `$inf` or writing invalid JSON."""
    for name in ("time_hours", "cost_usd"):
        value = getattr(est, name)
        if value is not None and not math.isfinite(value):
            setattr(est, name, None)
            est.warnings.append(f"{name} overflowed to {value} (check --price, --tokens and the hardware "
                                "numbers): not reported")


def _comm_plan(spec, method, settings, hardware, shard, *, trainable, with_adapter, knobs, nodes,  # noqa: PLR0913
               inter_node) -> compute.CommPlan | None:
    """What each GPU sends per step and how long it takes (advisor/scaleout.py); None on one
    device without offload."""
    if shard.gpus <= 1 and not shard.offload:
        return None
    traffic = scaleout.step_traffic(spec, method, settings, shard, trainable=trainable, with_adapter=with_adapter,
                                    knobs=knobs)
    return scaleout.comm_plan(traffic, hardware, grad_accum=settings.grad_accum, gpus=shard.gpus, nodes=nodes,
                              inter_node=inter_node)


@dataclass(frozen=True)
class _Learned:
    memory: MemoryBreakdown
    mfu: float | None = None
    notes: tuple[str, ...] = ()


def _calibrated(calibration: Calibration | None, spec: ModelSpec, method: Method, hardware: Hardware,
                gpus: int, mem: MemoryBreakdown) -> _Learned:
    """Apply what local runs measured on this hardware (advisor/calibration.py)."""
    if calibration is None or calibration.hardware.name != hardware.name or not method.trains:
        return _Learned(mem)
    notes = []
    default = compute.default_mfu(method, hardware)
    fit = calibration.mfu_for(method, spec.params, default)
    if fit is not None:
        notes.append(calibration.mfu_note(fit, method, default))
    mem, mem_note = calibration.correct_memory(mem, method, spec.params, gpus)
    if mem_note:
        notes.append(mem_note)
    return _Learned(mem, fit.value if fit is not None else None, tuple(notes))


def _check_sizes(gpus, tokens, examples, avg, price) -> None:
    """The user's counts and numbers, before any arithmetic: positive and finite (NaN or
    infinity would crash the token count or print `$inf` and invalid JSON), at most
    MAX_GPUS devices, and tokens or examples, not both (neither would silently win)."""
    for name, value in (("gpus", gpus), ("tokens", tokens), ("examples", examples),
                        ("avg_tokens_per_example", avg)):
        check_number(name, value, optional=True)
    if gpus > MAX_GPUS:
        raise InputError(f"must be at most {MAX_GPUS:,} (more devices than any training job uses), got {gpus:,}",
                         field="gpus")
    check_number("price", price, optional=True, zero_ok=True)
    if tokens is not None and examples is not None:
        raise InputError("give --tokens (per epoch) or --examples (x --tokens-per-example), not both",
                         field="tokens")


def check_lora_rank(spec: ModelSpec, method: Method, settings: TrainSettings, knobs: MemoryKnobs | None = None) -> None:
    """A rank above the smallest targeted dimension adds parameters but no expressiveness
    (rank(BA) <= min(d_in, d_out)) and is always a typo at that size: refuse it, naming the
    field.  Dense linears and lm_head/embeddings count; MoE routers (d_out = experts) do not.
    For ranks the user gave (the CLI calls it); the policy's own ranks are not checked here."""
    adapter = _adapter(spec, Method(method), settings, knobs or MemoryKnobs())
    if adapter is None:
        return
    rank = settings.lora_rank
    dims = [min(i, o) for p, i, o in spec.layer_linears if p in adapter.modules]
    dims += [spec.hidden for name in adapter.modules if name not in {p for p, _, _ in spec.layer_linears}
             and not name.startswith("experts.")]
    limit = min(dims) if dims else spec.hidden
    if rank > limit:
        raise InputError(f"{rank:,} exceeds {limit:,}, the smallest dimension of the targeted modules of "
                         f"{spec.name}: a LoRA rank cannot usefully exceed min(d_in, d_out)", field="lora_rank")


def _adapter(spec: ModelSpec, method: Method, settings: TrainSettings, knobs: MemoryKnobs) -> AdapterPlan | None:
    if method in (Method.LORA, Method.QLORA) or (method in (Method.DPO, Method.RLHF) and knobs.preference_adapter):
        return plan_adapter(spec, settings.lora_rank, settings.lora_targets)
    return None


def _trainable(spec: ModelSpec, method: Method, adapter: AdapterPlan | None, knobs: MemoryKnobs) -> int:
    """What the run records as trainable: the policy's (PPO's value model counts too)."""
    if method is Method.PROMPT:
        return 0
    copies = 2 if method is Method.RLHF and knobs.rlhf_algorithm == "ppo" else 1
    return (adapter.trainable_params if adapter is not None else spec.params) * copies


def _rlhf_timing(settings: TrainSettings, knobs: MemoryKnobs, examples: int | None, gpus: int) -> compute.RLHFTiming:
    """Sequences per RLHF stage: max_steps x global batch, or examples x epochs (else tokens/seq_len)."""
    if settings.max_steps is not None:
        sequences = float(settings.max_steps * settings.batch_size * settings.grad_accum * gpus)
    else:
        sequences = examples * settings.epochs if examples is not None else None
    return compute.RLHFTiming(algorithm=knobs.rlhf_algorithm, sft_stage=knobs.rlhf_sft_stage,
                              reward_adapter=settings.rlhf_reward_lora, sequences=sequences)


def _tokens(method, settings, tokens, examples, avg, gpus) -> tuple[int | None, str]:
    if method is Method.PROMPT:
        return None, "prompt: no training tokens"
    if settings.max_steps is not None:
        n = settings.max_steps * settings.batch_size * settings.grad_accum * gpus * settings.seq_len
        n *= 2 if method is Method.DPO else 1
        return n, f"tokens = max_steps x global batch x {settings.seq_len:,} tokens per sequence = {n:,}"
    if tokens is not None:
        n = int(tokens * settings.epochs)
        return n, f"tokens = {tokens:,} per epoch x {settings.epochs:g} epochs"
    if examples is not None:
        per = avg if avg is not None else settings.seq_len
        pair = 2 if method is Method.DPO else 1
        n = int(examples * min(per, settings.seq_len) * pair * settings.epochs)
        src = "given average" if avg is not None else "assumed = seq_len (padded/packed upper bound)"
        return n, f"tokens = {examples:,} examples x {min(per, settings.seq_len):,.0f} tokens ({src})" + (
            " x 2 (chosen + rejected)" if pair == 2 else "") + f" x {settings.epochs:g} epochs"
    return None, "no --tokens or --examples: time and cost not estimated"


def _warnings(est: Estimate, price: float | None) -> list[str]:
    spec, method, settings, hardware, mem = est.model, est.method, est.settings, est.hardware, est.memory
    usable, hours = hardware.usable_gib, est.time_hours
    notes = hardware_warnings(method, settings, hardware, est.gpus)
    if settings.seq_len > spec.max_position:
        notes.append(f"seq_len {settings.seq_len} exceeds {spec.name}'s maximum context of "
                     f"{spec.max_position} tokens")
    if mem.pageable and mem.total > usable >= mem.total - mem.pageable:
        notes.append(f"fits only by paging {mem.pageable:.1f} GiB of optimizer state to CPU RAM (slower steps)")
    if method is Method.QLORA and spec.is_moe:
        notes.append("transformers 5 stores MoE experts as fused tensors that bitsandbytes does not "
                     "quantize: experts stay 16-bit in QLoRA")
    if price is None and hours is not None:
        notes.append(f"no default price for {hardware.name}: pass --price to get a cost")
    return notes


def _assumptions(est: Estimate, knobs: MemoryKnobs, timing, token_note: str, price_and_source) -> list[str]:
    method, settings, hardware = est.method, est.settings, est.hardware
    price, src = price_and_source
    out = []
    if method is not Method.PROMPT:
        out.append(f"MFU {timing.mfu:.2f} for {method} ({compute.MFU_SOURCE})"
                   + ("; on CPU/Apple every method runs at full fine-tuning's rate, halved" if hardware.kind != "gpu"
                      else ""))
        out.append(f"{timing.flops_per_token / 1e9:,.1f} GFLOP per "
                   + ("sampled token in the RLHF policy stage (training as below, + the policy's old-log-prob, "
                      "reference and reward forwards; PPO: x2 training + 4 forwards): " if method is Method.RLHF
                      else "token ")
                   + "(2N forward + attention; x3 full, x2 LoRA, +1 forward with checkpointing)")
        if timing.overhead_hours and hardware.kind == "gpu":
            out.append(f"+ {timing.overhead_hours:.3g} h: micro-steps shorter than the host's "
                       f"{compute.GPU_HOST_FLOOR_S:g} s of Python, dispatch and Trainer work wait for it "
                       "(assumed as measured on CPU)")
        elif timing.overhead_hours:
            out.append(f"+ {hardware.step_overhead_s:g} s fixed overhead per micro-step ({hardware.step_overhead_source})")
    out.append(token_note)
    if price is not None:
        out.append(f"${price:.2f} per GPU-hour ({src})")
    out.append(_precision_note(method, settings.precision, knobs))
    if method is Method.DPO:
        out.append("DPO: chosen + rejected in one batch (2 x batch sequences); reference = "
                   + ("base with the adapter disabled" if knobs.preference_adapter else "a frozen copy in the policy's dtype"))
    if method is Method.RLHF:
        out += _rlhf_assumptions(settings, knobs, timing)
    out.append(("eager attention keeps b*heads*s^2 scores" if knobs.attention == "eager" else
                f"attention {knobs.attention} (no s^2 scores)") + "; loss: " + _LOSS_NOTES[knobs.loss])
    out.append(f"overhead = CUDA context {memory.CUDA_CONTEXT_GIB} GiB + allocator reserve "
               f"{memory.ALLOCATOR_RESERVE:.0%} of allocated (fitted to published peaks)"
               if hardware.kind == "gpu" else
               f"overhead = runtime {memory.RUNTIME_GIB_HOST} GiB"
               + (f" (+{memory.HOST_TRAINING_RUNTIME_GIB} GiB once training starts)" if method is not Method.PROMPT else "")
               + f" + allocator reserve {memory.ALLOCATOR_RESERVE:.0%}")
    if hardware.kind != "gpu":
        out.append(f"{hardware.kind}: usable memory {hardware.usable_gib:.1f} of {hardware.memory_gib:.1f} GiB")
    return out


_LOSS_NOTES = {
    "fused": "trl's fused LM head (never holds batch x seq x vocab logits; 4096 x 32768 tiles)",
    "chunked": "chunked cross-entropy (16-bit logit chunks + one fp32 chunk)",
    "hf": "full logits upcast to fp32 (transformers' loss)",
    "fp32-logits": "fp32 logits kept through backward (torchtune before 2024-07, transformers < 4.46)",
    "fp32-logits-freed": "fp32 logits freed before backward (torchtune from 2024-07)",
}
_PRECISION_NOTES = {
    "bf16": "pure bf16: weights, gradients and AdamW states in bf16, no autocast (8 B/param + activations)",
    "amp": "amp: fp32 master weights, gradients and AdamW states (16 B/param) + bf16 autocast copies "
           "of the weights during the forward (fp16 on GPUs without bf16)",
    "fp16": "fp16 autocast with fp32 master weights, gradients and AdamW states (16 B/param) and loss "
            "scaling (pure fp16 training is unstable)",
    "fp32": "fp32 weights, gradients, AdamW states and activations (16 B/param)",
}


def _precision_note(method: Method, precision: str, knobs: MemoryKnobs) -> str:
    if method is Method.PROMPT:
        return f"{precision}: weights {memory.compute_bytes(precision)} B/param (inference)"
    if method is Method.FULL or (method in (Method.DPO, Method.RLHF) and not knobs.preference_adapter):
        return _PRECISION_NOTES[precision]
    ab = memory.adapter_weight_bytes(method, precision, knobs)
    base = ("NF4 with double quantisation, lm_head/embeddings/norms 16-bit" if method is Method.QLORA
            else f"{memory.compute_bytes(precision)} B/param (frozen: no master copy)")
    half = "fp16" if precision == "fp16" else "bf16"  # the 16-bit type this precision computes in
    why = ("trl casts QLoRA adapters to bf16" if method is Method.QLORA and knobs.adapter_bytes is None
           else f"pure {half}" if ab == 2 else "PEFT keeps adapters in fp32")
    return (f"{precision}: base {base}; LoRA adapters {half if ab == 2 else 'fp32'} ({why}) with their own "
            f"gradients and optimizer states" + (f"; {half} autocast" if memory.autocasts(precision) else ""))


def _rlhf_assumptions(settings: TrainSettings, knobs: MemoryKnobs, timing) -> list[str]:
    algorithm = knobs.rlhf_algorithm
    response = knobs.rlhf_response_tokens or settings.rlhf_response_tokens
    models = ("policy and value (trained), reward model and reference (frozen)" if algorithm == "ppo" else
              "policy (trained), reward model and reference (frozen; no value model)")
    out = [f"RLHF {algorithm.upper()}: {models}; "
           + ("tunewise runs RLOO (trl 1.16 has no PPO trainer)" if algorithm == "ppo" else
              "what tunewise runs (trl 1.16 has no PPO trainer; PPO would add a value model)")
           + f"; {settings.rlhf_generations} samples per prompt of up to {response} tokens, "
           f"sampled token by token (memory-bandwidth bound; KV cache counted in activations)"]
    if timing.stages:
        parts = ", ".join(f"{name.replace('_', ' ')} {hours:.3g} h" for name, hours in timing.stages.items())
        out.append(f"RLHF time = {parts}"
                   + ("; a run that reuses an SFT run (init_from) skips the SFT stage" if knobs.rlhf_sft_stage else ""))
    return out
