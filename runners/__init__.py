"""Runners: execute a plan (prompt, LoRA, QLoRA, full fine-tuning, DPO) and record it.

    from runners import run_plan
    record = run_plan(plan, "runs", resume=False)      # -> runs/<name>/record.json

`RUNNERS` maps each Method to "module:Class" so torch, transformers and trl are imported
only when a run starts (as lm-eval's MODEL_MAPPING).  A runner satisfies `Runner`:
prepare() -> train() -> save() -> artifact paths.  To add a method (e.g. RLHF), write
its module and add one line here; the contract test imports every entry.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from runners._common import (
    CHECKPOINTS,
    RunContext,
    RunInterrupted,
    RunOptions,
    Runtime,
    last_complete_checkpoint,
    model_reference,
    package_versions,
    resolve_runtime,
    run_dir_for,
    utc_now,
)
from runners._resume import input_fingerprint
from runners._run_dir import claim_run_dir
from tunewise.errors import InputError, RunFailedError, TunewiseError, first_line
from tunewise.methods import Method
from tunewise.plan import Plan
from tunewise.records import RunRecord

RUNNERS: dict[Method, str] = {
    Method.PROMPT: "runners.prompting:PromptRunner",
    Method.LORA: "runners.sft:SFTRunner",
    Method.QLORA: "runners.sft:SFTRunner",
    Method.FULL: "runners.sft:SFTRunner",
    Method.DPO: "runners.dpo:DPORunner",
    Method.RLHF: "runners.rlhf:RLHFRunner",
}


class Runner(Protocol):
    """What every runner module provides (no base class: each runner reads top to bottom)."""

    def __init__(self, ctx: RunContext) -> None: ...

    def prepare(self) -> None: ...

    def train(self) -> None: ...

    def save(self) -> dict[str, str]: ...


def load_runner(method: Method) -> type[Runner]:
    target = RUNNERS.get(method)
    if target is None:
        raise InputError(f"no runner for method {method.value!r} yet", field="method")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def run_plan(  # noqa: PLR0913 - the runners contract: plan, folder, then keyword-only options
    plan: Plan,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    merge: bool = False,
    num_processes: int = 1,
    device: str = "auto",
    precision_forced: bool = False,
    callbacks: Sequence[Any] = (),
    topology: Any = None,
) -> RunRecord:
    """Execute `plan` into `out_dir/<name>/` and return its record (also on disk).

    `topology` (runners.accelerate_config.Topology): machines, ranks and rendezvous of a
    multi-process run; its num_processes replaces `num_processes`.
    Raises InputError (bad input, exit 2), RunFailedError (exit 1) or RunInterrupted;
    in every case after `record.json` says what happened.
    """
    num_processes = topology.num_processes if topology is not None else num_processes
    options = RunOptions(resume, overwrite, merge, num_processes, device, precision_forced, tuple(callbacks))
    run_dir = run_dir_for(out_dir, plan.name or plan.method.value)
    if plan.method not in RUNNERS:
        raise InputError(f"no runner for method {plan.method.value!r} yet", field="method")
    if num_processes > 1 and plan.method.trains:
        from runners.accelerate_config import Topology
        from runners.launch import check_launch, launch

        topology = topology or Topology(num_processes)
        on_cpu = check_launch(plan, options, topology)  # a bad combination fails before the run folder exists
        if topology.machine_rank > 0:  # machine 0 owns the folder and the record
            return launch(plan, run_dir, options, "resume" if resume else "new", topology, on_cpu=on_cpu)
        with claim_run_dir(run_dir, plan, options) as mode:  # --overwrite: the old run back on failure
            record = launch(plan, run_dir, options, mode, topology, on_cpu=on_cpu)
        return _remember(record, run_dir)
    with claim_run_dir(run_dir, plan, options) as mode:
        record = execute(plan, run_dir, options, mode)
    return _remember(record, run_dir)


def _remember(record: RunRecord, run_dir: Path) -> RunRecord:
    """A completed run joins the local history that calibrates later estimates
    (advisor/run_history.py; off with TUNEWISE_NO_HISTORY=1)."""
    from advisor.run_history import remember

    remember(record.to_dict(), run_dir)
    return record


def execute(plan: Plan, run_dir: Path, options: RunOptions, mode: str) -> RunRecord:
    """Run in this process (one rank of a launched job, or the whole job)."""
    record = RunRecord(
        name=run_dir.name,
        method=plan.method.value,
        base_model=model_reference(plan.model),
        plan=plan.to_dict(),
        seed=plan.settings.seed,
        estimate=plan.estimate,
        init_from=plan.init_from,
        started_at=utc_now(),
    )
    if _is_main():  # what --resume must find unchanged (runners/_resume.py)
        record.extra["inputs"] = input_fingerprint(plan)
    with quiet_upstream(), recording(record, run_dir, is_main=_is_main()) as start:
        runtime = _runtime(plan, options)
        settings = plan.settings.replace(precision=runtime.precision)  # as run, not as planned
        ctx = RunContext(plan, settings, run_dir, runtime, options, record)
        if mode == "resume":
            ctx.resume_from = _checkpoint_to_resume(ctx)
        record.hardware = {"planned": _plain(plan.hardware), "device": runtime.device,
                           "name": _device_name(runtime), "count": runtime.world_size}
        record.versions = package_versions()
        _note_unused_settings(ctx)
        runner = load_runner(plan.method)(ctx)
        runner.prepare()
        _record_config(ctx)
        _estimate_if_unplanned(ctx)
        if runtime.is_main:  # one writer: the other ranks may be on machines without this folder
            _write(record, run_dir)
        runner.train()
        record.artifacts.update(runner.save())
        if plan.method.trains:
            record.artifacts["metrics"] = "metrics.jsonl"
            _drop_checkpoints(ctx)
        _record_config(ctx)
        record.wall_time_s = round(time.perf_counter() - start, 3)
    return record


@contextmanager
def recording(record: RunRecord, run_dir: Path, *, is_main: bool) -> Iterator[float]:
    """Write the record as "running", then completed / failed / interrupted, whatever happens.

    Errors leave as one line naming the record; unexpected ones keep their traceback in
    `error.log` next to it (never on the user's terminal).
    """
    start = time.perf_counter()
    where = run_dir / "record.json"
    if is_main:
        _write(record, run_dir)
    try:
        yield start
        record.status = "completed"
    except RunInterrupted as exc:
        _fail(record, "interrupted", str(exc))
        raise
    except KeyboardInterrupt:
        _fail(record, "interrupted", "interrupted by the user (Ctrl-C); continue with --resume")
        raise
    except TunewiseError as exc:
        _fail(record, "failed", str(exc), kind="input" if isinstance(exc, InputError) else "failed")
        exc.message = f"{exc} (record: {where})"
        exc.path = exc.line = exc.field = None  # already inside the message
        raise
    except Exception as exc:  # a bug or an upstream failure (e.g. out of memory)
        if is_main:
            (run_dir / "error.log").write_text(traceback.format_exc())
        message = f"training failed: {type(exc).__name__}: {first_line(exc, 300)}"
        _fail(record, "failed", message)
        raise RunFailedError(f"{message} (traceback: {run_dir / 'error.log'}; record: {where})") from exc
    finally:
        record.finished_at = utc_now()
        record.wall_time_s = record.wall_time_s or round(time.perf_counter() - start, 3)
        if is_main:
            _write(record, run_dir)


def _fail(record: RunRecord, status: str, message: str, kind: str | None = None) -> None:
    record.status = status  # type: ignore[assignment]
    record.error = message
    record.extra["error_kind"] = kind or status


def _write(record: RunRecord, run_dir: Path) -> None:
    record.write(run_dir)


def _runtime(plan: Plan, options: RunOptions) -> Runtime:
    if not plan.method.trains:
        return Runtime("cpu", "fp32", "no training: prompting only")
    return resolve_runtime(
        options.device, plan.settings.precision, forced=options.precision_forced, world_size=options.num_processes,
        model_params=_model_params(plan.model),
    )


def _model_params(model: str) -> int | None:
    """Parameter count from the model's config (advisor, no weights read); None when unknown."""
    try:
        from advisor.models import resolve_model

        return resolve_model(model).params
    except Exception:  # noqa: BLE001 - unknown size only means the default thread count
        return None


def _checkpoint_to_resume(ctx: RunContext) -> str | None:
    found = last_complete_checkpoint(ctx.checkpoints_dir)
    if found is None:
        ctx.notes.append("--resume: no complete checkpoint found, started from step 0")
        return None
    ctx.notes.append(f"--resume: continued from {found.name}")
    ctx.record.extra["resumed_from"] = found.name
    return str(found)


def _record_config(ctx: RunContext) -> None:
    from tunewise.schema import to_mapping

    ctx.record.config.update(settings=to_mapping(ctx.settings), runtime=ctx.runtime.to_dict(), notes=list(ctx.notes))


def _note_unused_settings(ctx: RunContext) -> None:
    """Settings this run cannot honour are said out loud (never silently dropped)."""
    s = ctx.settings
    if ctx.runtime.world_size == 1 and (s.strategy != "ddp" or s.zero_stage):
        ctx.notes.append(f"strategy {s.strategy} / zero_stage {s.zero_stage} ignored: one process holds everything")
    if s.cpu_offload and ctx.runtime.world_size == 1:
        ctx.notes.append("cpu_offload ignored: it comes with strategy fsdp/deepspeed over --num-processes > 1")
    if ctx.options.merge and not (ctx.plan.method.uses_adapter or ctx.plan.method is Method.DPO):
        ctx.notes.append(f"--merge ignored: a {ctx.plan.method.value} run has no adapter to merge")


def _estimate_if_unplanned(ctx: RunContext) -> None:
    """A run without a plan estimate gets the advisor's, for the same resolved settings."""
    record = ctx.record
    if record.estimate is not None:
        record.extra["estimate_source"] = "plan"
        return
    if not ctx.plan.method.trains:
        return
    try:
        from advisor.estimate import estimate
        from advisor.hardware import resolve_hardware
        from advisor.memory import MemoryKnobs
        from advisor.models import resolve_model

        hw = ctx.plan.hardware
        data = record.config.get("data", {})
        lora = record.config.get("start", {}).get("lora", True)
        est = estimate(
            resolve_model(ctx.plan.model), ctx.plan.method, resolve_hardware(hw.name, hw.memory_gib), ctx.settings,
            gpus=ctx.runtime.world_size, examples=data.get("used") or None,
            avg_tokens_per_example=data.get("tokens_mean") or None, knobs=MemoryKnobs(preference_adapter=lora),
        )
    except Exception as exc:  # noqa: BLE001 - an estimate is a bonus: it must never fail a training run
        ctx.notes.append(f"no advisor estimate: {type(exc).__name__}: {first_line(exc, 300)}")
        return
    record.estimate = est.to_dict()
    record.extra["estimate_source"] = "advisor.estimate at run time (the plan had none)"


def _drop_checkpoints(ctx: RunContext) -> None:
    """A completed run keeps its artifact, not the optimizer-state checkpoints (GBs on real models)."""
    import shutil

    if ctx.runtime.local_rank == 0:  # every machine holds its own ranks' checkpoint files
        shutil.rmtree(ctx.run_dir / CHECKPOINTS, ignore_errors=True)
        ctx.notes.append("checkpoints removed after completion (the artifact holds the result)")


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _device_name(runtime: Runtime) -> str:
    if runtime.device == "cuda":
        import torch

        return torch.cuda.get_device_name(runtime.local_rank)
    from advisor.run_history import local_cpu_name  # the name calibration matches runs by

    return local_cpu_name()


def _plain(obj: Any) -> dict[str, Any]:
    from tunewise.schema import to_mapping

    return to_mapping(obj)


@contextmanager
def quiet_upstream() -> Iterator[None]:
    """Silence transformers/trl/peft/datasets chatter; keep errors (quiet, useful logs)."""
    import logging
    import warnings

    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("trl", "peft", "accelerate", "bitsandbytes", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        for module in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets"):
            warnings.filterwarnings("ignore", module=module)
            warnings.filterwarnings("ignore", module=rf"{module}\..*")
        yield
