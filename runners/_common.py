"""Helpers every runner shares: device and precision, seeding, defaults, versions (run folders:
runners/_run_dir.py, re-exported here).

Nothing here knows an upstream argument name (that is `runners/translate.py`); torch is
imported inside the functions that need it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runners._run_dir import (  # noqa: F401 - run folders live there; re-exported for existing imports
    CHECKPOINTS,
    RUN_NAME,
    last_complete_checkpoint,
    prepare_run_dir,
    run_dir_for,
)
from tunewise import __version__
from tunewise.errors import InputError, TunewiseError
from tunewise.methods import Method
from tunewise.plan import Plan
from tunewise.records import RunRecord
from tunewise.settings import TrainSettings

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "tokenizers")


class RunInterrupted(TunewiseError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint (status "interrupted")."""

    exit_code = 130


@dataclass(frozen=True)
class RunOptions:
    """How to execute a plan (not what to train: that is the plan)."""

    resume: bool = False
    overwrite: bool = False
    merge: bool = False
    num_processes: int = 1
    device: str = "auto"  # cpu | cuda | auto
    precision_forced: bool = False  # the user chose --precision: honour it even on CPU
    callbacks: tuple[Any, ...] = ()  # extra transformers TrainerCallbacks (tooling, tests)

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise InputError("choose one of --resume and --overwrite", field="resume")
        if self.num_processes < 1:
            raise InputError(f"must be >= 1, got {self.num_processes}", field="num_processes")
        if self.device not in ("cpu", "cuda", "auto"):
            raise InputError(f"expected cpu, cuda or auto, got {self.device!r}", field="device")


@dataclass(frozen=True)
class Runtime:
    """Where and in which number format training actually runs, and why."""

    device: str  # cpu | cuda
    precision: str  # bf16 (pure) | amp (fp32 masters + bf16 autocast) | fp16 | fp32, as resolved
    reason: str
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    threads: int | None = None  # torch intra-op threads on CPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class RunContext:
    """Everything a runner needs; the record it fills is written by the caller."""

    plan: Plan
    settings: TrainSettings  # resolved: learning_rate filled in, precision as run
    run_dir: Path
    runtime: Runtime
    options: RunOptions
    record: RunRecord
    resume_from: str | None = None  # checkpoint folder to continue from
    notes: list[str] = field(default_factory=list)  # what the runner decided, for the record

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / CHECKPOINTS


# ----------------------------------------------------------------------------- device and precision


def resolve_runtime(
    requested: str, precision: str, *, forced: bool, world_size: int = 1, model_params: int | None = None
) -> Runtime:
    """Pick the device and the number format, with the reason (recorded in the run).

    Formats (advisor/memory.py states the same semantics): "bf16" pure bf16 (weights loaded
    and updated in bf16, no autocast); "amp" fp32 master weights + bf16 autocast; "fp16" fp32
    masters + fp16 autocast with loss scaling; "fp32".  CPU trains in fp32 unless the user
    forced a format with --precision (bf16 kernels are slow or missing for many CPU ops; fp16
    training is not supported there).  On CUDA without bf16 (pre-Ampere) "bf16" and "amp"
    become "fp16" mixed precision: pure fp16 training is unstable, fp16 needs fp32 masters.
    """
    import torch

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", str(world_size)))
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise InputError("--device cuda requested but torch sees no CUDA GPU", field="device")
    device = "cuda" if requested == "cuda" or (requested == "auto" and has_cuda) else "cpu"
    if device == "cpu":
        if forced and precision == "fp16":
            raise InputError("fp16 training is not supported on CPU; use fp32, bf16 or amp", field="precision")
        if forced and precision in ("bf16", "amp"):
            chosen, reason = precision, f"{precision} forced by --precision on CPU"
        else:
            chosen, reason = "fp32", f"CPU: fp32 instead of the plan's {precision} (bf16 is slow on CPU)"
        threads = _cpu_threads(world_size, model_params)
        torch.set_num_threads(threads)
        return Runtime("cpu", chosen, reason, world_size, rank, local_rank, threads)
    bf16_ok = torch.cuda.is_bf16_supported()
    if precision in ("bf16", "amp") and not bf16_ok:
        chosen, reason = "fp16", "GPU lacks bf16: fp16 mixed precision (fp32 master weights) instead"
    else:
        chosen, reason = precision, f"{precision} as planned"
    return Runtime("cuda", chosen, reason, world_size, rank, local_rank, None)


SMALL_MODEL_PARAMS = 50_000_000


def _cpu_threads(world_size: int, model_params: int | None = None) -> int:
    """Intra-op threads: OMP_NUM_THREADS if set; one for a small model; else the cores split
    between processes.

    A small model's matrices are too small to split: threads add synchronisation, and on a
    shared machine an OpenMP team whose other thread is preempted waits a scheduler slice
    per operation.  Measured on the bundled 3.7M-parameter model, 2 cores with other jobs
    running: 4 LoRA steps took 22 s with 2 threads and 0.65 s with 1.  The choice depends
    only on the model, so the same model and seed give the same loss curve run after run.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    if model_params is not None and model_params < SMALL_MODEL_PARAMS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, world_size))


# ----------------------------------------------------------------------------- learning rates


def default_learning_rate(method: Method, *, adapter: bool) -> tuple[float, str]:
    """A method-appropriate learning rate and where it comes from.

    - full SFT 2e-5: trl `SFTConfig` default; Alpaca (Taori et al. 2023) trained LLaMA-7B
      at 2e-5.
    - LoRA/QLoRA 2e-4: QLoRA paper (Dettmers et al. 2023, appendix B) uses 2e-4 for 7B/13B
      (1e-4 for 33B/65B); trl's PEFT examples use 2e-4.
    - DPO full 5e-7: Zephyr-7B-beta DPO (Tunstall et al. 2023); trl `DPOConfig` default 1e-6.
    - DPO LoRA 5e-6: alignment-handbook zephyr-7b-beta QLoRA DPO recipe.
    """
    if method is Method.DPO:
        return (5e-6, "DPO+LoRA default (alignment-handbook QLoRA DPO recipe)") if adapter else (
            5e-7,
            "full DPO default (Zephyr-7B-beta, Tunstall et al. 2023)",
        )
    if method in (Method.LORA, Method.QLORA):
        return 2e-4, "LoRA/QLoRA default (QLoRA paper, Dettmers et al. 2023)"
    return 2e-5, "full fine-tuning default (trl SFTConfig; Alpaca)"


def resolve_learning_rate(ctx: RunContext, *, adapter: bool) -> None:
    """Fill in the method's default learning rate when the plan leaves it unset."""
    if ctx.settings.learning_rate is not None:
        ctx.notes.append(f"learning rate {ctx.settings.learning_rate:g}: from the plan")
        return
    rate, source = default_learning_rate(ctx.plan.method, adapter=adapter)
    ctx.settings = ctx.settings.replace(learning_rate=rate)
    ctx.notes.append(f"learning rate {rate:g}: {source}")


# ----------------------------------------------------------------------------- record helpers


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions of everything that shapes a run (DESIGN: records carry versions)."""
    versions = {"tunewise": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit = _git_commit()
    if commit:
        versions["tunewise_git"] = commit
    return versions


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def seed_everything(seed: int) -> None:
    """Python, numpy and torch RNGs (transformers.set_seed); the Trainer re-seeds the same way."""
    from transformers import set_seed

    set_seed(seed)


def resolve_seq_len(ctx: RunContext, model: str) -> None:
    """Keep seq_len within the model's context (max_position_embeddings): positions beyond it
    do not exist.  A seq_len the plan chose is refused in one line; the untouched default
    (TrainSettings.seq_len) is lowered to the context, with a note.  The context is read with
    the advisor's torch-free config reader; a model it cannot read (an uncatalogued, uncached
    hub id) is left to transformers."""
    from advisor.models import resolve_model

    seq_len = ctx.settings.seq_len
    try:
        limit = resolve_model(model).max_position
    except TunewiseError:
        return
    if not limit or seq_len <= limit:
        return
    if seq_len != TrainSettings.seq_len:
        raise InputError(f"{seq_len} exceeds {model}'s context of {limit} tokens (max_position_embeddings)",
                         field="seq_len")
    ctx.settings = ctx.settings.replace(seq_len=limit)
    ctx.notes.append(f"seq_len {limit}: the default {seq_len} lowered to the model's context")


def is_local_model(model: str) -> bool:
    return Path(model).expanduser().exists()


def model_reference(model: str) -> str:
    """An absolute folder for a local model, else the hub id unchanged."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model
