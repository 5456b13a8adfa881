"""Training mechanics shared by the SFT and DPO runners: load, train and measure, save.

The runners decide *what* to train; this module owns the identical parts around
`trainer.train()`: the callbacks, the peak-memory meter, filling the run record, and
writing artifacts atomically (into a hidden folder, then one rename) so a crash never
leaves a half-written `adapter/` or `model/`.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners._callbacks import MetricsLog, Progress, StopOnSignal
from runners._common import RunContext, RunInterrupted
from runners._memory import PeakMemoryMeter, per_rank
from runners.translate import adapters_in_compute_dtype
from tunewise import hub
from tunewise.atomic import atomic_write_json
from tunewise.errors import RunFailedError


@dataclass
class Watchers:
    metrics: MetricsLog
    stop: StopOnSignal


def load_tokenizer(model_ref: str):
    tokenizer = hub.load_tokenizer(model_ref)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batches need a pad id; it is masked out
    return tokenizer


def trainable_parameters(model) -> int:
    """sum(numel) over parameters with requires_grad: what the advisor's estimate must equal."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def watch(trainer, ctx: RunContext, label: str) -> Watchers:
    """Replace the Trainer's printing callbacks with ours; add the caller's extra ones."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    metrics = MetricsLog(ctx.run_dir / "metrics.jsonl", write=ctx.runtime.is_main)
    stop = StopOnSignal()
    for callback in (metrics, stop, Progress(label, enabled=ctx.runtime.is_main), *ctx.options.callbacks):
        trainer.add_callback(callback)
    return Watchers(metrics, stop)


def train_and_measure(trainer, ctx: RunContext, watchers: Watchers) -> None:
    """trainer.train() between the memory meter's start and stop; fills the record."""
    record = ctx.record
    meter = PeakMemoryMeter(ctx.runtime.device)
    if (ctx.resume_from or ctx.options.resume) and ctx.runtime.is_main:
        _trim_metrics(ctx.run_dir / "metrics.jsonl", ctx.resume_from)
    tokens_before = _tokens_in_checkpoint(ctx.resume_from)
    if adapters_in_compute_dtype(trainer.model, ctx.runtime):  # before the optimizer holds states
        note = "pure bf16: LoRA adapters cast to bf16 (PEFT loads them in fp32)"
        ctx.notes.append(note)
        record.config.setdefault("notes", []).append(note)
    meter.start()
    # The objects alive now (modules, datasets, the model) live as long as the run: freezing
    # them keeps the cyclic GC from re-scanning them on every collection during training
    # (gc.freeze, the CPython docs' advice for long-lived heaps); unfrozen right after.
    gc.collect()
    gc.freeze()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        output = trainer.train(resume_from_checkpoint=ctx.resume_from)
    finally:
        elapsed = time.perf_counter() - start
        gc.unfreeze()
        # CPU seconds of this process: on a shared machine wall time also counts waiting for a core.
        record.extra["train_cpu_s"] = round(time.process_time() - cpu_start, 3)
        record.peak_memory = meter.stop()
        watchers.stop.restore()
        state = trainer.state
        record.steps = state.global_step
        record.planned_steps = state.max_steps or watchers.metrics.planned_steps
        record.train_tokens = int(state.num_input_tokens_seen)
        record.train_time_s = round(elapsed, 3)
        record.tokens_per_s = round((record.train_tokens - tokens_before) / max(elapsed, 1e-9), 2)
        losses = [r["loss"] for r in watchers.metrics.rows if "loss" in r]
        record.final_loss = losses[-1] if losses else None
        _gather_peaks(record, ctx)
    record.extra["mean_train_loss"] = round(output.training_loss, 6)
    _raise_if_stopped(watchers, ctx)


def _raise_if_stopped(watchers: Watchers, ctx: RunContext) -> None:
    nan = watchers.metrics.nan
    if nan is not None:
        raise RunFailedError(
            f"loss became {nan.get('loss')} (grad norm {nan.get('grad_norm')}) at step {nan['step']} with "
            f"learning rate {ctx.settings.learning_rate:g}; training stopped. Lower --lr, train in fp32, "
            "or check the model and data for broken values"
        )
    if watchers.stop.received:
        raise RunInterrupted(
            f"stopped by {watchers.stop.received} at step {ctx.record.steps}; a checkpoint was saved: "
            "continue with --resume"
        )


def _trim_metrics(path: Path, checkpoint: str | None) -> None:
    """Drop metric rows logged after the checkpoint we resume from (they will be redone):
    all of them when no checkpoint was complete, and any line a kill cut off mid-write."""
    step = int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if (_step_of(line) or step + 1) <= step]
    from tunewise.atomic import atomic_write_text

    atomic_write_text(path, "".join(r + "\n" for r in rows))


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _tokens_in_checkpoint(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("num_input_tokens_seen", 0))


def _gather_peaks(record, ctx: RunContext) -> None:
    """With several processes, keep every rank's peak (rank 0's stays the headline)."""
    rt = ctx.runtime
    record.peak_memory.per_rank = per_rank(record.peak_memory, rt.rank, rt.local_rank, rt.world_size)


def _full_state_dict(trainer):
    """The whole model's state dict on rank 0 when FSDP or DeepSpeed shard it (a collective:
    every rank calls it; accelerate gathers the FSDP2 shards / ZeRO-3 16-bit weights), else
    None: the unwrapped model holds every weight and saves itself."""
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        return None
    return trainer.accelerator.get_state_dict(trainer.model)


# ----------------------------------------------------------------------------- artifacts


def save_adapter(trainer, tokenizer, run_dir: Path, base_ref: str) -> str:
    """`adapter/` in PEFT format whose config names the base a plain PeftModel load needs."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")  # trl's frozen DPO reference copy is not part of the result
    state = _full_state_dict(trainer)  # PEFT keeps only the adapter's entries of it

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=state)  # adapter_config.json + adapter_model.safetensors
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_ref
        atomic_write_json(config_path, config)

    return _publish(run_dir, "adapter", write, trainer)


def save_full_model(trainer, tokenizer, run_dir: Path, precision: str) -> str:
    """`model/`: a plain transformers checkpoint (safetensors), saved in the training precision."""
    import torch

    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True  # gradient checkpointing turned the KV cache off for training
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    state = _full_state_dict(trainer)
    if state is not None and dtype is not None:  # sharded: cast the gathered copy, not the shards
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    elif dtype is not None:
        model = model.to(dtype)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=state)
        tokenizer.save_pretrained(tmp)

    return _publish(run_dir, "model", write, trainer)


def merge_adapter(base_ref: str, run_dir: Path, load_kwargs: dict[str, Any], tokenizer) -> str:
    """`merged/`: base + adapter folded into one plain checkpoint (--merge)."""
    from peft import PeftModel

    base = hub.load_causal_lm(base_ref, load_kwargs)
    merged = PeftModel.from_pretrained(base, str(run_dir / "adapter")).merge_and_unload()

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _publish(run_dir, "merged", write, None)


def _publish(run_dir: Path, name: str, write, trainer) -> str:
    """Write into `.name.partial`, then rename to `name`: readers never see half a folder."""
    if trainer is not None:
        trainer.accelerator.wait_for_everyone()
        if not trainer.accelerator.is_main_process:
            return name
    tmp = run_dir / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    for leftover in tmp.glob("*.bin"):  # safetensors only: no pickles in published artifacts
        leftover.unlink()
    final = run_dir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return name

