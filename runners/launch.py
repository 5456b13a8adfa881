"""--num-processes N: the same training through `accelerate launch` (DDP for now).

The parent writes two files into the run folder and starts accelerate:

    launch.json              the plan and run options each worker executes
    accelerate_config.yaml   the accelerate config used (kept: it documents the run)

Each worker (`python -m runners.launch <run_dir>`) runs `runners.execute` as one rank;
rank 0 writes the record, metrics and artifacts.  The parent waits, then reads the record.

CPU (tests, laptops): accelerate spawns several local CPU processes only through its
torchrun path (`distributed_type: MULTI_GPU`; `MULTI_CPU` without mpirun starts one
process), so the config says MULTI_GPU with `use_cpu: true`; every worker then trains
with `use_cpu=True`, and accelerate initialises the gloo backend (`DistributedType.MULTI_CPU`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runners._common import RunInterrupted, RunOptions
from tunewise.atomic import atomic_write_json, atomic_write_yaml
from tunewise.errors import InputError, RunFailedError
from tunewise.plan import Plan
from tunewise.records import RunRecord, load_run_record
from tunewise.schema import from_mapping, read_json

LAUNCH_FILE = "launch.json"
CONFIG_FILE = "accelerate_config.yaml"


def launch(plan: Plan, run_dir: Path, options: RunOptions, mode: str) -> RunRecord:
    """Start N processes with accelerate and return the record rank 0 wrote."""
    _check_strategy(plan)
    if options.callbacks:
        raise InputError("extra callbacks cannot cross process boundaries; use --num-processes 1")
    on_cpu = _on_cpu(options.device)
    atomic_write_yaml(run_dir / CONFIG_FILE, accelerate_config(options.num_processes, on_cpu, plan.settings.precision))
    atomic_write_json(
        run_dir / LAUNCH_FILE,
        {"plan": plan.to_dict(), "mode": mode, "device": "cpu" if on_cpu else "cuda",
         "merge": options.merge, "precision_forced": options.precision_forced,
         "num_processes": options.num_processes},
    )
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(run_dir / CONFIG_FILE),
        "--module", "runners.launch", str(run_dir),
    ]
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    result = subprocess.run(command, env=env, check=False)
    return _outcome(run_dir, result.returncode)


def accelerate_config(num_processes: int, on_cpu: bool, precision: str) -> dict:
    """An accelerate config file (the keys `accelerate config` writes) for local DDP."""
    # autocast only for mixed precision ("amp", "fp16"); pure bf16 needs none (advisor/memory.py)
    mixed = "no" if on_cpu or precision in ("fp32", "bf16") else ("fp16" if precision == "fp16" else "bf16")
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",  # torchrun-style local processes; see the module docstring
        "num_processes": num_processes,
        "num_machines": 1,
        "machine_rank": 0,
        "main_process_port": 0,  # 0: accelerate picks a free port (parallel runs never collide)
        "mixed_precision": mixed,
        "use_cpu": on_cpu,
        "gpu_ids": "all",
        "rdzv_backend": "static",
        "same_network": True,
        "debug": False,
        "downcast_bf16": "no",
    }


def _check_strategy(plan: Plan) -> None:
    s = plan.settings
    if s.strategy != "ddp" or s.zero_stage:
        raise InputError(
            f"strategy {s.strategy} with zero_stage {s.zero_stage} is not supported by the runner yet; "
            "use strategy: ddp, zero_stage: 0",
            field="settings.strategy",
        )


def _on_cpu(device: str) -> bool:
    if device == "cpu":
        return True
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but torch sees no CUDA GPU", field="device")
    return not torch.cuda.is_available()


def _pythonpath() -> str:
    """Workers must import this checkout's packages even when launched from elsewhere."""
    root = str(Path(__file__).resolve().parents[1])
    existing = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + existing if existing else "")


def _outcome(run_dir: Path, returncode: int) -> RunRecord:
    """The record rank 0 wrote, turned back into the error class a one-process run raises."""
    try:
        record = load_run_record(run_dir)
    except InputError:
        raise RunFailedError(f"accelerate launch exited with {returncode} before any record was written",
                             path=run_dir) from None
    if returncode == 0 and record.status == "completed":
        return record
    if record.status == "running":  # a worker died without writing its outcome (killed, OOM)
        record.status = "failed"
        record.error = f"a worker process exited with code {returncode}"
        record.write(run_dir)
    where = f"(record: {run_dir / 'record.json'})"
    kind = record.extra.get("error_kind")
    if kind == "input":
        raise InputError(f"{record.error} {where}")
    if kind == "interrupted":
        raise RunInterrupted(f"{record.error} {where}")
    raise RunFailedError(f"{record.error} {where}")


def worker(run_dir: Path) -> int:
    """One rank: rebuild the plan and options from launch.json and execute."""
    from runners import execute
    from tunewise.errors import TunewiseError

    spec = read_json(run_dir / LAUNCH_FILE)
    plan = from_mapping(Plan, spec["plan"], run_dir / LAUNCH_FILE)
    options = RunOptions(merge=spec["merge"], num_processes=spec["num_processes"], device=spec["device"],
                         precision_forced=spec["precision_forced"])
    try:
        execute(plan, run_dir, options, spec["mode"])
    except TunewiseError:
        return 1  # rank 0 recorded it; the parent reports it in one line
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(worker(Path(sys.argv[1])))
