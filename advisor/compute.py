"""Training FLOPs, time and cost.

FLOPs per token (memory_formulas.md §7): forward ≈ 2N matmul FLOPs plus attention
4·L·d·s (llm-foundry `attn_flops_per_seq`); full fine-tuning = 3 forwards (6N: backward
computes input and weight gradients); LoRA = 2 forwards (4N: frozen weights need no
weight-gradient GEMMs; TRL "LoRA without regret": ~67% of full fine-tuning's compute);
full gradient checkpointing adds one forward (+2N).  DPO adds a reference forward on the
same tokens (0 when reference log-probs are precomputed).  N is the parameters a token
touches: active parameters minus the input embedding lookup.

RLHF runs three stages (runners/rlhf.py), each over T tokens (examples x tokens x epochs,
or max_steps x global batch x seq_len):
  SFT     T tokens, trained like LoRA/full (skipped when a run reuses an SFT run);
  reward  2T tokens (chosen + rejected), trained (adapter or all weights: rlhf_reward_lora);
  policy  k·T sampled tokens when epoch-based (every prompt is sampled k = rlhf_generations
          times; with max_steps a step is one batch of completions, so T).  Per sampled
          token, RLOO (what tunewise runs) trains the policy and runs its old-log-prob,
          reference and reward forwards: train + 3 forwards; PPO trains policy and value
          and runs policy, value, reference and reward forwards: 2 x train + 4 forwards.
Sampling is token by token, bandwidth-bound: each decode step reads every weight once for
a generation batch of batch x grad_accum completions (trl's RLOO generates one batch per
optimizer step), `rlhf_generation_hours`.

time = tokens x FLOPs/token / (GPUs x peak FLOP/s x MFU) + micro-steps x the device's fixed
step overhead (`Hardware.step_overhead_s`: Python, op dispatch and Trainer bookkeeping per
micro-step, measured on CPU, where it dominates small models; on a GPU that host work
overlaps the kernels, so it only sets a floor of GPU_HOST_FLOOR_S per micro-step) + the communication that
does not hide behind compute on several GPUs (advisor/scaleout.py).  MFU per method is an
assumption stated in every estimate.  It divides the FLOPs above, which count the
recomputation, so it is what the anchors call HFU (memory_formulas.md §8, same setup, checkpointing
on): torchtune Llama-3.2-3B full ≈ 59% HFU (45% MFU at 6N), LoRA ≈ 51% HFU at 6N (34% MFU at
4N), so LoRA runs at 0.86x full's FLOP rate; HF-Trainer LoRA on Llama-2-7B ≈ 31% HFU at 6N
(LLaMA-Factory wiki); QLoRA 1.56x slower than LoRA without compilation (LitGPT).  Hence full
0.35 (no HF-Trainer anchor: 0.31 / 0.86 ≈ 0.36, rounded down), LoRA 0.30 (HF anchor 0.31),
QLoRA 0.30 / 1.56 ≈ 0.19; DPO trains an adapter: LoRA's.  LoRA with checkpointing then runs
(0.30/6) / (0.35/8) = 1.14x the tokens/s of full fine-tuning, torchtune's measured 8210 /
7210 = 1.14x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.hardware import Hardware
from advisor.models import ModelSpec
from tunewise.methods import Method
from tunewise.settings import TrainSettings

# Model FLOPs utilisation of the tunewise runners (transformers Trainer / TRL, no compile).
# (hardware FLOPs, recomputation counted: module docstring)
MFU = {
    Method.FULL: 0.35,
    Method.LORA: 0.30,
    Method.QLORA: 0.19,
    Method.DPO: 0.30,
    Method.RLHF: 0.20,  # no anchor: small PPO/RLOO batches between generations, below LoRA's
}
MFU_SOURCE = ("FLOPs counted with recomputation; memory_formulas.md §8 anchors: torchtune 59%/51% HFU, "
              "HF LoRA 31% HFU, rounded down for TRL without compile")
# Host devices: measured matmul efficiency of eager PyTorch training on CPU/MPS is lower.
HOST_MFU_FACTOR = 0.5
# On a host every trained method runs at full fine-tuning's FLOP rate: the per-method GPU
# penalties above come from GPU kernels (adapter GEMMs too small to fill tensor cores, NF4
# dequantisation kernels).  Measured here (benchmarks/estimate_cpu.py, ~100M Llama, batch 2
# x 256, checkpointing, two runs): LoRA's step takes 0.67-0.75 x full's (its FLOP ratio:
# 0.75, 3 vs 4 passes), QLoRA 0.60-0.62 x, DPO 1.75-1.90 x (its FLOP ratio is 2).  Applied
# to Apple's MPS as well (not measured there).
# A GPU's kernels run asynchronously while the host does a micro-step's Python, op dispatch
# and Trainer bookkeeping, so a micro-step takes at least that host time.  Assumed equal to
# the overhead measured on CPU (the `cpu` catalog row, benchmarks/step_overhead.py: 0.015 s
# full, 0.025 s LoRA): the same Python runs, minus the kernels it now launches instead.
GPU_HOST_FLOOR_S = 0.02
# Memory-bandwidth utilisation while generating token by token (RLHF rollouts).
GENERATION_BANDWIDTH_EFFICIENCY = 0.5


@dataclass(frozen=True)
class TimeEstimate:
    flops_per_token: float
    mfu: float
    hours: float | None
    generation_hours: float = 0.0
    stages: dict[str, float] | None = None  # RLHF: hours of sft, reward_model, policy, generation
    overhead_hours: float = 0.0  # micro-steps x Hardware.step_overhead_s
    comm_hours: float = 0.0  # all communication, before overlap (advisor/scaleout.py)
    exposed_comm_hours: float = 0.0  # the part that does not overlap compute (in `hours`)
    host_optimizer_hours: float = 0.0  # CPU offload: optimizer steps on the host (in `hours`)


def matmul_params(spec: ModelSpec) -> int:
    """Parameters used in matmuls per token: active minus the input-embedding lookup."""
    lookup = spec.embedding_params if spec.lm_head_params else 0  # tied: the head still multiplies
    return spec.active_params - lookup


def sequence_len(settings: TrainSettings, mean_tokens: float | None) -> int:
    """The length a sequence really runs at: `seq_len` when packing fills it (or the data is
    unknown), else the mean example length, capped at `seq_len` (unpacked examples are not
    padded up to `seq_len`, and attention FLOPs grow with the length that runs)."""
    if settings.packing or not mean_tokens:
        return settings.seq_len
    return max(1, min(settings.seq_len, math.ceil(float(mean_tokens))))


def forward_flops_per_token(spec: ModelSpec, seq_len: int) -> float:
    attention = 4.0 * spec.n_layers * spec.n_heads * spec.head_dim * seq_len
    return 2.0 * matmul_params(spec) + attention


def flops_per_token(spec: ModelSpec, method: Method, settings: TrainSettings, *,
                    adapter: bool, precompute_reference: bool = False, algorithm: str = "rloo") -> float:
    """Training FLOPs per processed token (see module docstring)."""
    fwd = forward_flops_per_token(spec, settings.seq_len)
    if method is Method.PROMPT:
        return fwd
    passes = 2.0 if adapter else 3.0  # forward + input grads (+ weight grads)
    if settings.gradient_checkpointing:
        passes += 1.0
    total = passes * fwd
    if method is Method.DPO and not precompute_reference:
        total += fwd  # reference forward on the same chosen + rejected tokens
    if method is Method.RLHF:
        return rlhf_policy_flops(total, fwd, algorithm)
    return total


def rlhf_policy_flops(train: float, fwd: float, algorithm: str = "rloo") -> float:
    """FLOPs per sampled token of the RLHF policy stage (module docstring)."""
    if algorithm == "ppo":
        return 2 * train + 4 * fwd  # policy + value train; policy, value, reference, reward forwards
    return train + 3 * fwd  # policy trains; its old log-probs, the reference and the reward model forward


def default_mfu(method: Method, hardware: Hardware) -> float:
    """The assumed MFU of `method` on `hardware` before any local calibration."""
    if hardware.kind != "gpu":
        return (MFU.get(method, 0.25) if method is Method.PROMPT else MFU[Method.FULL]) * HOST_MFU_FACTOR
    return MFU.get(method, 0.25)


def training_time(  # noqa: PLR0913 - mfu: the calibrated value (advisor/calibration.py)
    spec: ModelSpec, method: Method, settings: TrainSettings, hardware: Hardware, *,
    tokens: int | None, gpus: int, adapter: bool, precompute_reference: bool = False,
    mfu: float | None = None, rlhf: RLHFTiming | None = None, comm: CommPlan | None = None,
) -> TimeEstimate:
    """mfu: a calibrated value (advisor/calibration.py) instead of `default_mfu`; it was fitted
    to end-to-end throughput, so it already includes the fixed step overhead (not added again).

    rlhf: how the RLHF stages run (default `RLHFTiming()`); ignored for other methods.
    comm: the bytes each GPU sends per step (advisor/scaleout.py); None on one device.
    """
    rlhf = rlhf or RLHFTiming()
    fpt = flops_per_token(spec, method, settings, adapter=adapter, precompute_reference=precompute_reference,
                          algorithm=rlhf.algorithm)
    calibrated = mfu is not None
    mfu = mfu if calibrated else default_mfu(method, hardware)
    peak = hardware.peak_tflops(settings.precision)
    if tokens is None or method is Method.PROMPT or not peak:
        return TimeEstimate(fpt, mfu, None if method is not Method.PROMPT else 0.0)
    rate = gpus * peak * 1e12 * mfu
    if method is not Method.RLHF:
        compute_h = tokens * fpt / rate / 3600
        micro = micro_steps(method, settings, tokens, gpus)
        overhead_h = 0.0 if calibrated else overhead_hours(hardware, micro, compute_h)
        comm_h = comm.hours(micro) if comm is not None else 0.0
        exposed = max(0.0, comm_h - compute_h)  # full overlap (advisor/scaleout.py)
        host_opt_h = comm.host_optimizer_hours(micro) if comm is not None else 0.0
        return TimeEstimate(fpt, mfu, compute_h + overhead_h + exposed + host_opt_h, overhead_hours=overhead_h,
                            comm_hours=comm_h, exposed_comm_hours=exposed, host_optimizer_hours=host_opt_h)
    stages = rlhf_stage_hours(spec, settings, tokens, rate, adapter=adapter, fpt=fpt, rlhf=rlhf)
    sampled = rlhf.sampled_tokens(settings, tokens)
    sequences = (rlhf.sequences or tokens / settings.seq_len) * sampled / tokens
    gen_hours = rlhf_generation_hours(spec, settings, hardware, sequences, gpus)
    stages["generation"] = gen_hours
    return TimeEstimate(fpt, mfu, sum(stages.values()), gen_hours, stages)


def overhead_hours(hardware: Hardware, micro: float, compute_h: float) -> float:
    """The fixed per-micro-step time (module docstring): a host runs it on the same cores, so it
    adds; on a GPU it overlaps the asynchronous kernels and only sets a floor of
    GPU_HOST_FLOOR_S per micro-step (host-bound micro-steps)."""
    if hardware.step_overhead_s:
        return micro * hardware.step_overhead_s / 3600
    if hardware.kind == "gpu":
        return max(0.0, micro * GPU_HOST_FLOOR_S / 3600 - compute_h)
    return 0.0


def micro_steps(method: Method, settings: TrainSettings, tokens: float, gpus: int) -> float:
    """Forward/backward passes per device: tokens / (batch x seq_len x GPUs); a DPO pair is two sequences."""
    sequences = settings.batch_size * (2 if method is Method.DPO else 1)
    return tokens / (sequences * settings.seq_len * gpus)


@dataclass(frozen=True)
class CommPlan:
    """What advisor/scaleout.py computed for a layout: bytes per step and the time they take."""

    hours_per_micro_step: float
    grad_accum: int = 1
    hours_per_step: float = 0.0  # per optimizer step (grad_accum micro-steps)
    # CPU offload: the optimizer step runs on the host while the GPUs wait (not overlapped)
    host_optimizer_hours_per_step: float = 0.0

    def hours(self, micro: float) -> float:
        return micro * self.hours_per_micro_step + micro / self.grad_accum * self.hours_per_step

    def host_optimizer_hours(self, micro: float) -> float:
        return micro / self.grad_accum * self.host_optimizer_hours_per_step


@dataclass(frozen=True)
class RLHFTiming:
    """How the RLHF stages run: the algorithm, whether step 1 (SFT) runs, the reward model's
    adapter, and how many sequences a stage holds (None: tokens / seq_len)."""

    algorithm: str = "rloo"  # what runners/rlhf.py runs (trl 1.16 has no PPO); "ppo" for comparison
    sft_stage: bool = True
    reward_adapter: bool | None = None  # None: like the policy
    sequences: float | None = None

    def sampled_tokens(self, settings: TrainSettings, tokens: int) -> float:
        """Policy-stage tokens: every prompt sampled k times per epoch; with max_steps, T."""
        return tokens * (1 if settings.max_steps is not None else settings.rlhf_generations)


def rlhf_stage_hours(spec: ModelSpec, settings: TrainSettings, tokens: int, rate: float, *, adapter: bool,
                     fpt: float, rlhf: RLHFTiming) -> dict[str, float]:
    """Compute hours of SFT, reward-model and policy stages (module docstring)."""
    def train(on_adapter: bool) -> float:
        return flops_per_token(spec, Method.LORA if on_adapter else Method.FULL, settings, adapter=on_adapter)

    reward_adapter = adapter if rlhf.reward_adapter is None else rlhf.reward_adapter
    return {
        "sft": tokens * train(adapter) / rate / 3600 if rlhf.sft_stage else 0.0,
        "reward_model": 2 * tokens * train(reward_adapter) / rate / 3600,
        "policy": rlhf.sampled_tokens(settings, tokens) * fpt / rate / 3600,
    }


def rlhf_generation_hours(spec: ModelSpec, settings: TrainSettings, hardware: Hardware,
                          sequences: float, gpus: int) -> float:
    """Decode steps x the time to read every weight once (bandwidth-bound sampling).

    Completions are sampled in generation batches of batch_size x grad_accum per device;
    each batch takes rlhf_response_tokens decode steps (the longest completion bounds it).
    """
    if not hardware.memory_bandwidth_gbs:
        return 0.0
    batches = sequences / (settings.batch_size * settings.grad_accum * gpus)
    weight_bytes = spec.active_params * (4.0 if settings.precision == "fp32" else 2.0)
    seconds_per_step = weight_bytes / (hardware.memory_bandwidth_gbs * 1e9 * GENERATION_BANDWIDTH_EFFICIENCY)
    return batches * settings.rlhf_response_tokens * seconds_per_step / 3600
