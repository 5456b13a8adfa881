"""The accelerate config (and DeepSpeed JSON) a multi-process run launches with, from the plan.

Pure Python (no torch): the launcher (runners/launch.py) resolves the device and the
model's decoder-layer class, then calls `check` and `build` here.  The keys are the ones
`accelerate config` writes (accelerate 1.16, commands/config/cluster.py); the unit tests
load every generated file with accelerate's own loader and launcher checks.

    plan settings                      accelerate config
    strategy ddp, zero_stage 0         distributed_type MULTI_GPU (torch DDP)
    strategy fsdp, zero_stage 3 (or 0) distributed_type FSDP, fsdp_version 2 (torch fully_shard),
                                       fsdp_reshard_after_forward true  = FULL_SHARD  = ZeRO-3
    strategy fsdp, zero_stage 2        fsdp_reshard_after_forward false = SHARD_GRAD_OP = ZeRO-2
    strategy fsdp, cpu_offload         fsdp_offload_params true (params + grads on CPU, CPU optimizer step)
    strategy deepspeed, zero_stage s   distributed_type DEEPSPEED, deepspeed_config.json with stage s
    strategy deepspeed, cpu_offload    offload_optimizer cpu (ZeRO-2/3), offload_param cpu (ZeRO-3)

FSDP follows the transformers/PEFT FSDP guides: auto-wrap by the model's decoder-layer
class (TRANSFORMER_BASED_WRAP), `fsdp_cpu_ram_efficient_loading` (rank 0 reads the
weights, the others get them by broadcast), SHARDED_STATE_DICT checkpoints (each rank
writes its shard: no full gather per --resume checkpoint); `adapter/` and `model/` are
gathered once at the end (runners/_train.py) and stay plain PEFT/transformers checkpoints.  FSDP2 has no `fsdp_use_orig_params` /
`fsdp_sync_module_states` (accelerate: "obsolete in FSDP2"), so they are not written.
QLoRA under FSDP or DeepSpeed stores its 4-bit weights in the compute dtype
(`bnb_4bit_quant_storage`, runners/translate.py) so they shard like every other weight
(transformers docs, "FSDP-QLoRA"; Answer.AI fsdp_qlora).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings, sharding_conflict

CONFIG_FILE = "accelerate_config.yaml"
DEEPSPEED_FILE = "deepspeed_config.json"
DEFAULT_MULTI_NODE_PORT = 29500  # accelerate's and torchrun's default rendezvous port

# Oldest versions with the feature (their release notes): FSDP2 in accelerate 1.6.0;
# `bnb_4bit_quant_storage` in bitsandbytes 0.43.0 and transformers 4.39.0 (FSDP-QLoRA).
FSDP2_REQUIRES = (("accelerate", "1.6.0"), ("torch", "2.6.0"))
QUANT_STORAGE_REQUIRES = (("bitsandbytes", "0.43.0"), ("transformers", "4.39.0"))


def _is_host(value: str) -> bool:
    """An IPv4/IPv6 address or an RFC 1123 host name (what torch.distributed can connect to)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        return len(value) <= 253 and re.fullmatch(rf"{label}(\.{label})*\.?", value) is not None


@dataclass(frozen=True)
class Topology:
    """Where the processes run.  `num_processes` counts all machines (accelerate's meaning)."""

    num_processes: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None  # None: any free port on one machine, 29500 across machines

    def __post_init__(self) -> None:
        if self.num_processes < 1:
            raise InputError(f"must be >= 1, got {self.num_processes}", field="num_processes")
        if self.num_machines < 1:
            raise InputError(f"must be >= 1, got {self.num_machines}", field="num_machines")
        if self.num_processes % self.num_machines:
            raise InputError(f"{self.num_processes} processes do not split evenly over {self.num_machines} "
                             "machines (--num-processes counts every machine's processes)", field="num_processes")
        if not 0 <= self.machine_rank < self.num_machines:
            raise InputError(f"must be in 0..{self.num_machines - 1}, got {self.machine_rank}", field="machine_rank")
        if self.num_machines > 1 and not self.main_process_ip:
            raise InputError("several machines need --main-process-ip (the address of machine rank 0)",
                             field="main_process_ip")
        if self.main_process_ip is not None and not _is_host(self.main_process_ip):
            raise InputError(f"{self.main_process_ip!r} is neither an IP address nor a host name",
                             field="main_process_ip")
        if self.main_process_port is not None and not 0 <= self.main_process_port <= 65535:
            raise InputError(f"must be a port number 0..65535, got {self.main_process_port}",
                             field="main_process_port")
        if self.num_machines > 1 and self.main_process_port == 0:
            raise InputError("0 (any free port) only works on one machine: every machine must use the same port",
                             field="main_process_port")

    @property
    def per_machine(self) -> int:
        return self.num_processes // self.num_machines

    @property
    def port(self) -> int:
        if self.main_process_port is not None:
            return self.main_process_port
        # 0: accelerate picks a free port, so parallel single-machine runs never collide.
        return 0 if self.num_machines == 1 else DEFAULT_MULTI_NODE_PORT


@dataclass
class LaunchFiles:
    """What `build` produces: the accelerate YAML mapping, the DeepSpeed JSON, and why."""

    accelerate: dict[str, Any]
    deepspeed: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check(settings: TrainSettings, method: Method, topology: Topology, *, on_cpu: bool, gpus: int | None,
          version: Callable[[str], str | None] = installed_version) -> None:
    """Refuse, in one line, every combination that cannot run (before anything launches).

    `gpus`: CUDA devices this machine sees (None on CPU); `version`: installed package
    versions (a parameter so tests can pretend).
    """
    s = settings
    _check_sharding(s)
    if s.strategy == "deepspeed" and version("deepspeed") is None:
        raise InputError("strategy deepspeed needs the DeepSpeed package: pip install deepspeed", field="settings.strategy")
    if on_cpu and s.strategy != "ddp":
        raise InputError(
            f"strategy {s.strategy} needs CUDA GPUs: on CPU accelerate runs the processes as MULTI_CPU "
            "(DDP over gloo) and ignores the FSDP/DeepSpeed plugin; use strategy ddp on CPU", field="settings.strategy")
    if not on_cpu and gpus is not None and topology.per_machine > gpus:
        raise InputError(f"{topology.per_machine} processes per machine but this machine has {gpus} CUDA GPU(s)",
                         field="num_processes")
    if s.strategy == "fsdp":
        _require(FSDP2_REQUIRES, "FSDP2", version)
        if method is Method.QLORA:
            _require(QUANT_STORAGE_REQUIRES, "QLoRA with FSDP (bnb_4bit_quant_storage)", version)


def _check_sharding(s: TrainSettings) -> None:
    conflict = sharding_conflict(s.strategy, s.zero_stage)
    if conflict:
        raise InputError(conflict, field="settings.zero_stage")
    if s.strategy == "ddp" and s.cpu_offload:
        raise InputError("cpu_offload with strategy ddp: offloading comes with strategy fsdp or deepspeed",
                         field="settings.cpu_offload")
    if s.strategy == "deepspeed" and s.cpu_offload and s.zero_stage < 2:
        raise InputError(f"cpu_offload with DeepSpeed zero_stage {s.zero_stage}: ZeRO-Offload needs zero_stage 2 "
                         "or 3", field="settings.cpu_offload")
    if s.strategy == "deepspeed" and s.cpu_offload and s.optimizer != "adamw":
        raise InputError(f"cpu_offload with optimizer {s.optimizer}: DeepSpeed's offload steps its own CPU AdamW; "
                         "use optimizer adamw", field="settings.optimizer")


def _require(requirements, what: str, version: Callable[[str], str | None]) -> None:
    from packaging.version import Version

    for package, oldest in requirements:
        found = version(package)
        if found is None or Version(found.split("+")[0]) < Version(oldest):
            raise InputError(f"{what} needs {package} >= {oldest}, found {found or 'none'}: "
                             f"pip install -U {package}", field="settings.strategy")


def build(settings: TrainSettings, method: Method, topology: Topology, *, on_cpu: bool,
          layer_classes: tuple[str, ...] = (), deepspeed_path: str = DEEPSPEED_FILE) -> LaunchFiles:
    """The accelerate config (and DeepSpeed JSON) for these settings; call `check` first.

    `deepspeed_path`: where the JSON will be written (absolute: the workers' folder differs).
    """
    s = settings
    files = LaunchFiles(_base(topology, on_cpu))
    if s.strategy == "fsdp":
        files.accelerate.update(distributed_type="FSDP", fsdp_config=_fsdp(s, layer_classes, files.notes))
        files.accelerate["mixed_precision"] = _mixed_precision(s.precision)
    elif s.strategy == "deepspeed":
        files.deepspeed = deepspeed_json(s)
        files.accelerate.update(distributed_type="DEEPSPEED",
                               deepspeed_config=_deepspeed_yaml(s, topology, deepspeed_path))
        if s.precision == "bf16":
            files.notes.append("DeepSpeed keeps fp32 master weights: pure bf16 runs as amp (bf16 compute)")
    else:
        files.accelerate["mixed_precision"] = "no" if on_cpu else _mixed_precision(s.precision)
    if method is Method.QLORA and s.strategy != "ddp":
        files.notes.append("QLoRA: 4-bit weights stored in the compute dtype (bnb_4bit_quant_storage) to shard them")
    return files


def _base(topology: Topology, on_cpu: bool) -> dict[str, Any]:
    """The keys every config has.  CPU: accelerate starts several local CPU processes only
    through its torchrun path (`MULTI_GPU`; `MULTI_CPU` without mpirun starts one), so CPU
    runs say MULTI_GPU with `use_cpu: true` and train on gloo (runners/launch.py)."""
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_processes": topology.num_processes,
        "num_machines": topology.num_machines,
        "machine_rank": topology.machine_rank,
        "main_process_port": topology.port,
        "use_cpu": on_cpu,
        "gpu_ids": "all",
        "rdzv_backend": "static",
        "same_network": True,
        "debug": False,
        "downcast_bf16": "no",
    }
    if topology.num_machines > 1:
        config["main_process_ip"] = topology.main_process_ip
    return config


def _mixed_precision(precision: str) -> str:
    """accelerate's autocast: only for mixed precision ("amp", "fp16"); pure bf16 and fp32
    compute in the weights' dtype (the precision semantics of advisor/memory.py)."""
    return {"amp": "bf16", "fp16": "fp16"}.get(precision, "no")


def _fsdp(s: TrainSettings, layer_classes: tuple[str, ...], notes: list[str]) -> dict[str, Any]:
    full_shard = s.zero_stage != 2
    if s.zero_stage == 0:
        notes.append("strategy fsdp with zero_stage 0: full sharding (FSDP's default, the ZeRO-3 equivalent)")
    config: dict[str, Any] = {
        "fsdp_version": 2,
        "fsdp_reshard_after_forward": full_shard,
        "fsdp_offload_params": s.cpu_offload,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
        "fsdp_cpu_ram_efficient_loading": True,
        # The Trainer refuses FSDP's activation checkpointing next to its own; the plan's
        # gradient_checkpointing stays with the Trainer, as on one GPU (PEFT's FSDP-QLoRA example).
        "fsdp_activation_checkpointing": False,
    }
    if layer_classes:
        config["fsdp_transformer_layer_cls_to_wrap"] = ",".join(layer_classes)
    else:
        notes.append("FSDP wraps the model's _no_split_modules (its decoder-layer class could not be read here)")
    return config


def _deepspeed_yaml(s: TrainSettings, topology: Topology, path: str) -> dict[str, Any]:
    """Only the JSON path and the launcher: with `deepspeed_config_file` accelerate refuses
    the other deepspeed keys (and `mixed_precision`), which live in the JSON."""
    config: dict[str, Any] = {"deepspeed_config_file": path, "zero3_init_flag": s.zero_stage == 3}
    if topology.num_machines > 1:
        # torchrun on every machine (as for DDP/FSDP), instead of pdsh + a hostfile
        config["deepspeed_multinode_launcher"] = "standard"
    return config


def deepspeed_json(s: TrainSettings) -> dict[str, Any]:
    """A DeepSpeed config whose "auto" values the Trainer fills from TrainingArguments
    (transformers integrations/deepspeed.py, `trainer_config_process` / `_finalize`)."""
    zero: dict[str, Any] = {"stage": s.zero_stage, "overlap_comm": True, "contiguous_gradients": True,
                            "reduce_bucket_size": "auto"}
    if s.zero_stage == 3:
        zero.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    # one 16-bit state dict at save time: adapter/ and model/ stay plain checkpoints
                    stage3_gather_16bit_weights_on_model_save=True)
    config: dict[str, Any] = {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto", "loss_scale": 0, "initial_scale_power": 16},
        "zero_optimization": zero,
        "wall_clock_breakdown": False,
    }
    if s.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if s.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
        # ZeRO-Offload steps DeepSpeed's CPU AdamW (a client optimizer is refused with offload)
        config["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                           "weight_decay": "auto"}}
    return config


def launch_precision(settings: TrainSettings) -> str:
    """The precision the workers train in: DeepSpeed has no pure-bf16 mode (its bf16 keeps
    fp32 masters, as "amp"), everything else as planned."""
    return "amp" if settings.strategy == "deepspeed" and settings.precision == "bf16" else settings.precision


def summary(settings: TrainSettings, topology: Topology, files: LaunchFiles) -> dict[str, Any]:
    """The record's `config.distributed`: what was planned and which files say it."""
    out: dict[str, Any] = {
        "strategy": settings.strategy, "zero_stage": settings.zero_stage, "cpu_offload": settings.cpu_offload,
        "num_processes": topology.num_processes, "num_machines": topology.num_machines,
        "machine_rank": topology.machine_rank, "accelerate_config": CONFIG_FILE, "notes": list(files.notes),
    }
    if files.deepspeed is not None:
        out["deepspeed_config"] = DEEPSPEED_FILE
    return out
