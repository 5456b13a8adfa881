"""Honest support checks: can this method/setting run on this hardware at all?

Facts (bitsandbytes 0.50 backends, PyTorch devices):
* bitsandbytes NF4 (QLoRA) runs on CUDA/ROCm and on CPU; on Apple MPS only through its
  pure-PyTorch fallback (slow; hub kernels need macOS 26).  8-bit optimizers have CUDA,
  ROCm, XPU and CPU kernels but none for MPS; paged optimizers need CUDA unified memory.
* bf16 needs Ampere or newer on NVIDIA (T4 is Turing: fp16 only) and M2 or newer on Apple.
* Several GPUs need a GPU kind device; ZeRO/FSDP need more than one to shard (one GPU
  still offloads to CPU RAM with ZeRO-Offload, arXiv:2101.06840).
"""

from __future__ import annotations

from advisor.hardware import Hardware
from tunewise.methods import Method
from tunewise.settings import TrainSettings


def unsupported_reason(method: Method, settings: TrainSettings, hardware: Hardware, gpus: int) -> str | None:
    """Why this cannot run here, or None when it can."""
    if gpus > 1 and hardware.kind != "gpu":
        return f"{hardware.name} is a single {hardware.kind} device; --gpus {gpus} needs GPUs"
    if method is Method.QLORA and not hardware.bnb_4bit:
        return f"bitsandbytes 4-bit (QLoRA) is not available on {hardware.name}"
    if settings.optimizer == "adamw-8bit" and not hardware.bnb_8bit_optimizer and method.trains:
        return f"bitsandbytes 8-bit optimizers have no {hardware.kind} kernels ({hardware.name}); use adamw"
    if settings.optimizer == "paged-adamw-8bit" and not hardware.paged_optimizer and method.trains:
        return f"paged optimizers need CUDA unified memory, not available on {hardware.name}; use adamw"
    if settings.precision == "bf16" and not hardware.bf16:
        return f"{hardware.name} has no bf16 support; use --precision fp16 (or fp32)"
    if settings.precision == "fp16" and hardware.kind == "cpu" and method.trains:
        # the runner refuses it too (runners/_common.py): PyTorch's fp16 GradScaler needs a GPU
        return "fp16 training is not supported on CPU; use fp32, bf16 or amp"
    return None


def hardware_warnings(method: Method, settings: TrainSettings, hardware: Hardware, gpus: int) -> list[str]:
    notes = []
    if method is Method.QLORA and hardware.kind == "apple":
        notes.append("QLoRA on Apple MPS uses bitsandbytes' pure-PyTorch fallback kernels: expect it to be slow")
    if settings.zero_stage > 0 and gpus == 1 and not settings.cpu_offload:
        notes.append(f"--zero-stage {settings.zero_stage} shards nothing on one GPU")
    if hardware.kind == "cpu" and method.trains:
        notes.append("training on CPU: expect hours per million tokens even for small models")
    if hardware.bf16_tflops is None:
        notes.append(f"no FLOP/s on file for {hardware.name}: time and cost are not estimated")
    return notes
