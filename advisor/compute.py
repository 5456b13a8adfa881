"""Training FLOPs, time and cost.

FLOPs per token (memory_formulas.md §7): forward ≈ 2N matmul FLOPs plus attention
4·L·d·s (llm-foundry `attn_flops_per_seq`); full fine-tuning = 3 forwards (6N: backward
computes input and weight gradients); LoRA = 2 forwards (4N: frozen weights need no
weight-gradient GEMMs; TRL "LoRA without regret": ~67% of full fine-tuning's compute);
full gradient checkpointing adds one forward (+2N).  DPO adds a reference forward on the
same tokens (0 when reference log-probs are precomputed); RLHF trains policy and value,
runs reward and reference forwards, and generates (bandwidth-bound, see `rlhf_generation`).
N is the parameters a token touches: active parameters minus the input embedding lookup.

time = tokens x FLOPs/token / (GPUs x peak FLOP/s x MFU).  MFU per method is an
assumption stated in every estimate (anchors in memory_formulas.md §8: torchtune
Llama-3.2-3B full + activation checkpointing ≈ 45% MFU, LoRA ≈ 34% at 4N; HF-Trainer
LoRA on Llama-2-7B ≈ 21% at 4N (LLaMA-Factory wiki); QLoRA 1.56x slower than LoRA without
compilation (LitGPT)).
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.hardware import Hardware
from advisor.models import ModelSpec
from tunewise.methods import Method
from tunewise.settings import TrainSettings

# Model FLOPs utilisation of the tunewise runners (transformers Trainer / TRL, no compile).
MFU = {
    Method.FULL: 0.35,
    Method.LORA: 0.25,
    Method.QLORA: 0.16,
    Method.DPO: 0.25,
    Method.RLHF: 0.20,
}
MFU_SOURCE = "memory_formulas.md §8 anchors (torchtune 45%/34%, HF LoRA 21%), rounded down for TRL without compile"
# Host devices: measured matmul efficiency of eager PyTorch training on CPU/MPS is lower.
HOST_MFU_FACTOR = 0.5
# Memory-bandwidth utilisation while generating token by token (RLHF rollouts).
GENERATION_BANDWIDTH_EFFICIENCY = 0.5


@dataclass(frozen=True)
class TimeEstimate:
    flops_per_token: float
    mfu: float
    hours: float | None
    generation_hours: float = 0.0


def matmul_params(spec: ModelSpec) -> int:
    """Parameters used in matmuls per token: active minus the input-embedding lookup."""
    lookup = spec.embedding_params if spec.lm_head_params else 0  # tied: the head still multiplies
    return spec.active_params - lookup


def forward_flops_per_token(spec: ModelSpec, seq_len: int) -> float:
    attention = 4.0 * spec.n_layers * spec.n_heads * spec.head_dim * seq_len
    return 2.0 * matmul_params(spec) + attention


def flops_per_token(spec: ModelSpec, method: Method, settings: TrainSettings, *,
                    adapter: bool, precompute_reference: bool = False) -> float:
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
        total = 2 * total + 2 * fwd  # policy + value train; reward and reference forwards
    return total


def default_mfu(method: Method, hardware: Hardware) -> float:
    """The assumed MFU of `method` on `hardware` before any local calibration."""
    return MFU.get(method, 0.25) * (HOST_MFU_FACTOR if hardware.kind != "gpu" else 1.0)


def training_time(  # noqa: PLR0913 - mfu: the calibrated value (advisor/calibration.py)
    spec: ModelSpec, method: Method, settings: TrainSettings, hardware: Hardware, *,
    tokens: int | None, gpus: int, adapter: bool, precompute_reference: bool = False,
    mfu: float | None = None,
) -> TimeEstimate:
    """mfu: a calibrated value (advisor/calibration.py) instead of `default_mfu`."""
    fpt = flops_per_token(spec, method, settings, adapter=adapter, precompute_reference=precompute_reference)
    mfu = mfu if mfu is not None else default_mfu(method, hardware)
    peak = hardware.peak_tflops(settings.precision)
    if tokens is None or method is Method.PROMPT or not peak:
        return TimeEstimate(fpt, mfu, None if method is not Method.PROMPT else 0.0)
    seconds = tokens * fpt / (gpus * peak * 1e12 * mfu)
    gen_hours = rlhf_generation_hours(spec, settings, hardware, tokens, gpus) if method is Method.RLHF else 0.0
    return TimeEstimate(fpt, mfu, seconds / 3600 + gen_hours, gen_hours)


def rlhf_generation_hours(spec: ModelSpec, settings: TrainSettings, hardware: Hardware,
                          tokens: int, gpus: int, response_tokens: int = 256) -> float:
    """Token-by-token generation reads all weights once per step per batch (bandwidth-bound)."""
    if not hardware.memory_bandwidth_gbs:
        return 0.0
    sequences = tokens / settings.seq_len
    steps = sequences / (settings.batch_size * gpus) * response_tokens
    seconds_per_step = spec.active_params * 2.0 / (hardware.memory_bandwidth_gbs * 1e9 * GENERATION_BANDWIDTH_EFFICIENCY)
    return steps * seconds_per_step / 3600
