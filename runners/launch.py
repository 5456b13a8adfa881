"""--num-processes N: the same training through `accelerate launch` (DDP, FSDP or DeepSpeed).

The parent checks the combination (one clear line before anything starts), writes the
files into the run folder and starts accelerate:

    launch.json              the plan and run options each worker executes
    accelerate_config.yaml   the accelerate config used (kept: it documents the run)
    deepspeed_config.json    strategy deepspeed only: the ZeRO config

The configs come from the plan's settings (runners/accelerate_config.py).  Each worker
(`python -m runners.launch <run_dir>`) runs `runners.execute` as one rank; global rank 0
writes the record, metrics and artifacts.  The parent waits, then reads the record.

Several machines: run the same command on each with its `--machine-rank`.  Machine 0 owns
the run folder and the record; the others keep their config in a hidden sibling folder
(`.<name>.machine<r>/`, removed when they finish) and report that their part finished.

CPU (tests, laptops): DDP over gloo.  accelerate spawns several local CPU processes only
through its torchrun path, so the config says MULTI_GPU with `use_cpu: true`; every worker
trains with `use_cpu=True`, and accelerate initialises gloo (`DistributedType.MULTI_CPU`).
FSDP and DeepSpeed need CUDA (accelerate ignores their plugins on CPU).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from runners._common import RunInterrupted, RunOptions
from runners.accelerate_config import (
    CONFIG_FILE,
    DEEPSPEED_FILE,
    Topology,
    build,
    check,
    launch_precision,
    summary,
)
from tunewise.atomic import atomic_write_json, atomic_write_yaml
from tunewise.errors import InputError, RunFailedError
from tunewise.plan import Plan
from tunewise.records import RunRecord, load_run_record
from tunewise.schema import from_mapping, read_json

LAUNCH_FILE = "launch.json"


def check_launch(plan: Plan, options: RunOptions, topology: Topology) -> bool:
    """Refuse a combination that cannot run; returns whether the processes run on CPU."""
    if options.callbacks:
        raise InputError("extra callbacks cannot cross process boundaries; use --num-processes 1")
    on_cpu = _on_cpu(options.device)
    check(plan.settings, plan.method, topology, on_cpu=on_cpu, gpus=None if on_cpu else _gpu_count())
    return on_cpu


def launch(plan: Plan, run_dir: Path, options: RunOptions, mode: str, topology: Topology, *,
           on_cpu: bool) -> RunRecord:
    """Start the processes with accelerate and return the record rank 0 wrote.

    The caller has run `check_launch` (before the run folder exists) and passes its `on_cpu`.
    """
    s = plan.settings
    layers = _layer_classes(plan.model) if s.strategy == "fsdp" else ()
    here = machine_folder(run_dir, topology.machine_rank)
    here.mkdir(parents=True, exist_ok=True)
    files = build(s, plan.method, topology, on_cpu=on_cpu, layer_classes=layers,
                  deepspeed_path=str(here / DEEPSPEED_FILE))
    if files.deepspeed is not None:
        atomic_write_json(here / DEEPSPEED_FILE, files.deepspeed)
    atomic_write_yaml(here / CONFIG_FILE, files.accelerate)
    distributed = summary(s, topology, files)
    worker_plan = replace(plan, settings=s.replace(precision=launch_precision(s)))
    atomic_write_json(
        here / LAUNCH_FILE,
        {"plan": worker_plan.to_dict(), "mode": mode, "device": "cpu" if on_cpu else "cuda",
         "merge": options.merge, "precision_forced": options.precision_forced,
         "num_processes": topology.num_processes, "distributed": distributed},
    )
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(here / CONFIG_FILE),
        "--module", "runners.launch", str(run_dir), str(here / LAUNCH_FILE),
    ]
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    result = subprocess.run(command, env=env, check=False)
    if topology.machine_rank > 0:
        return _elsewhere(plan, run_dir, topology, result.returncode)
    return _outcome(run_dir, result.returncode, distributed)


def machine_folder(run_dir: Path, machine_rank: int) -> Path:
    """Where a machine's accelerate config and launch spec go: the run folder on machine 0;
    a hidden sibling on the others, which must not touch the run folder (on a shared
    filesystem machine 0 creates, refuses or replaces it, and may start last)."""
    return run_dir if machine_rank == 0 else run_dir.parent / f".{run_dir.name}.machine{machine_rank}"


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _layer_classes(model: str) -> tuple[str, ...]:
    """The model's decoder-layer class(es) for FSDP's auto-wrap policy, from its config and
    transformers' `_no_split_modules` (no weights read); () when unknown (accelerate then
    reads `_no_split_modules` from the loaded model)."""
    try:
        import transformers

        config = transformers.AutoConfig.from_pretrained(model)
        architecture = getattr(transformers, (config.architectures or [""])[0], None)
        return tuple(getattr(architecture, "_no_split_modules", None) or ())
    except Exception:  # noqa: BLE001 - a missing class name only means accelerate's own default
        return ()


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


def _outcome(run_dir: Path, returncode: int, distributed: dict) -> RunRecord:
    """The record rank 0 wrote, turned back into the error class a one-process run raises."""
    try:
        record = load_run_record(run_dir)
    except InputError:
        raise RunFailedError(f"accelerate launch exited with {returncode} before any record was written",
                             path=run_dir) from None
    if "distributed" not in record.config:  # the workers died before saying what ran
        record.config["distributed"] = distributed
        record.write(run_dir)
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


def _elsewhere(plan: Plan, run_dir: Path, topology: Topology, returncode: int) -> RunRecord:
    """Machine rank > 0: its processes finished; machine 0 holds (and alone writes) the record,
    so this machine never reads or writes one (on a shared folder it may still be running)."""
    if returncode != 0:
        raise RunFailedError(f"this machine's processes (machine rank {topology.machine_rank}) exited with "
                             f"{returncode}; machine 0's record.json says what happened", path=run_dir)
    shutil.rmtree(machine_folder(run_dir, topology.machine_rank), ignore_errors=True)  # kept only on failure
    record = RunRecord(name=run_dir.name, method=plan.method.value, base_model=plan.model, status="completed")
    record.extra["record_on_machine"] = 0
    record.extra["machine_rank"] = topology.machine_rank
    return record


def worker(run_dir: Path, launch_spec: Path | None = None) -> int:
    """One rank: rebuild the plan and options from its machine's launch spec and execute."""
    from runners import execute
    from tunewise.errors import TunewiseError

    launch_spec = launch_spec or run_dir / LAUNCH_FILE
    spec = read_json(launch_spec)
    plan = from_mapping(Plan, spec["plan"], launch_spec)
    # resume travels too: a resume without a complete checkpoint must still drop the killed
    # run's metric rows (runners/_train.py _trim_metrics)
    options = RunOptions(resume=spec["mode"] == "resume", merge=spec["merge"], num_processes=spec["num_processes"],
                         device=spec["device"], precision_forced=spec["precision_forced"])
    try:
        execute(plan, run_dir, options, spec["mode"])
    except TunewiseError:
        return 1  # rank 0 recorded it; the parent reports it in one line
    except KeyboardInterrupt:
        return 130
    finally:
        _record_distributed(run_dir, spec["distributed"])
    return 0


def _record_distributed(run_dir: Path, planned: dict) -> None:
    """Rank 0 adds what was planned and what accelerate actually ran (its distributed type:
    MULTI_GPU/MULTI_CPU for DDP, FSDP, DEEPSPEED) to the record's `config.distributed`."""
    if os.environ.get("RANK", "0") != "0" or not (run_dir / "record.json").exists():
        return
    from accelerate.state import AcceleratorState

    actual = AcceleratorState._shared_state.get("distributed_type")  # None: failed before accelerate started
    try:
        record = load_run_record(run_dir)
    except InputError:  # unreadable: the parent reports the failure; never mask it here
        return
    record.config["distributed"] = {**planned, "accelerate_distributed_type": getattr(actual, "value", actual)}
    record.write(run_dir)


if __name__ == "__main__":
    sys.exit(worker(Path(sys.argv[1]), *(Path(a) for a in sys.argv[2:3])))
