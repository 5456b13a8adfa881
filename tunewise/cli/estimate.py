"""`tunewise estimate`: memory per device, fit, time and cost of one training setting."""

from __future__ import annotations

import json
import math

import click

from tunewise.methods import Method
from tunewise.settings import OPTIMIZERS, PRECISIONS, STRATEGIES

METHOD_CHOICES = tuple(m.value for m in Method)
# flag -> TrainSettings field (only the flags the user gave override the defaults)
SETTINGS_FLAGS = ("batch_size", "grad_accum", "seq_len", "epochs", "max_steps", "lora_rank", "lora_targets",
                  "optimizer", "precision", "gradient_checkpointing", "zero_stage", "cpu_offload", "strategy")
# advisor.scaleout.INTER_NODE's names, default first: a copy, because importing the advisor here
# would slow every command's start-up (tests/unit/test_estimate_cli.py keeps the two equal).
INTER_NODE = ("infiniband-ndr", "infiniband-hdr", "ethernet-100g")


@click.command("estimate")
@click.option("--model", help="Hub id from the catalog, a config.json, or a local model folder.")
@click.option("--method", type=click.Choice(METHOD_CHOICES, case_sensitive=False), default="lora", show_default=True)
@click.option("--batch-size", type=int, help="Micro-batch per device (DPO: pairs).  [default: 4]")
@click.option("--grad-accum", type=int, help="Gradient accumulation steps.  [default: 1]")
@click.option("--seq-len", type=int, help="Tokens per sequence.  [default: 2048]")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
              help="Recompute activations in backward.  [default: on]")
@click.option("--lora-rank", type=int, help="LoRA rank r.  [default: 16]")
@click.option("--lora-targets", help="q_proj,v_proj | all-linear | any comma list of module names.  [default: all-linear]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="[default: adamw]")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="[default: bf16 where the device has it, else fp16; fp32 on CPU]")
@click.option("--gpu", help="Device from the hardware catalog (rtx-4090, a100-80gb, h100, cpu, ...).  [default: cpu]")
@click.option("--gpu-mem-gib", type=float, help="Memory per device in GiB (needed for a device not in the catalog).")
@click.option("--gpus", "--num-gpus", "gpus", type=int, default=1, show_default=True,
              help="GPUs in all (accelerate's num_processes), spread evenly over --num-nodes.")
@click.option("--num-nodes", type=int, default=1, show_default=True, help="Machines the GPUs are spread over.")
@click.option("--strategy", type=click.Choice(STRATEGIES),
              help="ddp, fsdp (full shard; --zero-stage 2: SHARD_GRAD_OP) or deepspeed (needs --zero-stage).  "
                   "[default: from --zero-stage: 1-2 deepspeed, 3 fsdp]")
@click.option("--zero-stage", type=int, help="ZeRO / FSDP sharding stage 0-3 over --gpus.  [default: 0]")
@click.option("--cpu-offload", "--offload", "cpu_offload", is_flag=True, default=None,
              help="Optimizer states and gradients (ZeRO-3 / FSDP: also weights) in CPU RAM.")
@click.option("--inter-node", type=click.Choice(INTER_NODE), default=INTER_NODE[0], show_default=True,
              help="Network between nodes (with --num-nodes > 1).")
@click.option("--epochs", type=float, help="Passes over the data.  [default: 1]")
@click.option("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
@click.option("--examples", type=int, help="Training examples (DPO: pairs).")
@click.option("--tokens-per-example", type=float, help="Average tokens per example.  [default: --seq-len]")
@click.option("--tokens", type=int, help="Training tokens per epoch (instead of --examples).")
@click.option("--price", type=float, help="$ per device-hour (overrides the catalog price).")
@click.option("--hardware-file", type=click.Path(dir_okay=False), help="YAML with extra devices or prices.")
@click.option("--adapter/--no-adapter", "preference_adapter", default=True, show_default=True,
              help="DPO/RLHF: train a LoRA adapter (reference = adapter disabled) or all weights.")
@click.option("--calibrate-from", "calibrate_from", multiple=True, type=click.Path(),
              help="Learn MFU and memory overhead from measured runs: runs/, a run folder, a record.json "
                   "or a history .jsonl (repeatable).")
@click.option("--no-history", is_flag=True,
              help="Do not learn from the local run history (~/.cache/tunewise/history.jsonl, ./runs).")
@click.option("--trace", "trace", is_flag=True,
              help="Also run one training step of the real architecture under fake tensors (no memory is "
                   "allocated; needs torch) and print analytic vs traced memory per part.")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate/v1 JSON.")
@click.option("--list-models", is_flag=True, help="List the built-in model catalog and exit.")
@click.option("--list-hardware", is_flag=True, help="List the hardware catalog and exit.")
def command(**opts) -> None:
    """Estimate memory per device, whether it fits, time and cost for one setting.

    \b
    Example:
      tunewise estimate --model meta-llama/Llama-3.1-8B --method qlora --gpu rtx-4090 \\
          --batch-size 1 --seq-len 2048 --examples 5000 --tokens-per-example 400
      tunewise estimate --model ./my-model/config.json --method full --gpu h100 --gpus 8 \\
          --zero-stage 3 --tokens 200000000 --json
    """
    from tunewise.cli.estimate_text import list_hardware_text, list_models_text, render

    if opts["list_models"]:
        click.echo(list_models_text())
        return
    if opts["list_hardware"]:
        click.echo(list_hardware_text(opts["hardware_file"]))
        return
    if not opts["model"]:
        raise click.UsageError("--model is required (or use --list-models)")
    result, calibration = run_estimate(opts)
    traced = None
    if opts.get("trace"):  # runners/trace_compare.py; imports torch only here
        from runners.trace_compare import trace_for_estimate

        traced = trace_for_estimate(opts["model"], result, adapter=opts["preference_adapter"])
    if opts["as_json"]:
        out = result.to_dict()  # estimate/v1: an applied calibration shows in `assumptions`
        if traced is not None:
            out["trace"] = traced
        click.echo(json.dumps(finite_json(out), indent=2, allow_nan=False))
    else:
        click.echo(render(result))
        if calibration is not None:
            click.echo("\n".join(f"  {line}" for line in calibration.summary()))
        if traced is not None:
            from runners.trace_compare import render_comparison

            click.echo(render_comparison(traced))


def run_estimate(opts: dict):
    """Build the inputs from the parsed flags and call advisor.estimate.estimate.

    Returns (estimate, calibration or None)."""
    from advisor.estimate import check_lora_rank, estimate
    from advisor.hardware import resolve_hardware
    from advisor.memory import MemoryKnobs
    from advisor.models import resolve_model
    from tunewise.methods import parse_method
    from tunewise.settings import TrainSettings

    given = {k: opts[k] for k in SETTINGS_FLAGS if opts.get(k) is not None}
    given.update(layout_settings(opts.get("strategy"), opts.get("zero_stage")))
    hardware = resolve_hardware(opts["gpu"], opts["gpu_mem_gib"], opts["hardware_file"])
    precision_note = _default_precision(given, hardware)
    settings = TrainSettings(**given)
    spec = resolve_model(opts["model"])
    method, knobs = parse_method(opts["method"]), MemoryKnobs(preference_adapter=opts["preference_adapter"])
    check_lora_rank(spec, method, settings, knobs)
    calibration = _calibration(opts, hardware)
    result = estimate(
        spec, method, hardware, settings, gpus=opts["gpus"], tokens=opts["tokens"],
        examples=opts["examples"], avg_tokens_per_example=opts["tokens_per_example"],
        price_usd_per_hour=opts["price"], knobs=knobs,
        calibration=calibration, nodes=opts.get("num_nodes", 1), inter_node=opts.get("inter_node") or INTER_NODE[0],
    )
    if precision_note:
        result.assumptions.append(precision_note)
    return result, calibration


def _default_precision(given: dict, hardware) -> str | None:
    """Without --precision, train in what the device supports (bf16, else fp16; fp32 on CPU)
    rather than a fixed bf16 that a T4 or an M1 cannot run.  Sets it in `given` and returns
    the assumption line that says so; None when the user chose."""
    if "precision" in given:
        return None
    given["precision"] = precision = hardware.default_precision()
    why = {"fp32": "a CPU has no fast 16-bit matmuls", "fp16": f"{hardware.name} has no bf16",
           "bf16": f"{hardware.name} supports bf16"}[precision]
    return f"precision {precision}: the default on {hardware.name} ({why}); pass --precision to choose"


def finite_json(value):
    """`value` with every NaN or infinite float as null: the estimate/v1 JSON stays valid JSON
    (json.dumps would write NaN/Infinity, which strict parsers refuse) even where a very large
    but finite input overflows a product."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def layout_settings(strategy: str | None, zero_stage: int | None) -> dict:
    """--strategy and --zero-stage as settings: a stage alone picks its usual engine (1-2
    DeepSpeed, 3 FSDP, as the policy does); DeepSpeed needs a stage; DDP shards nothing."""
    from tunewise.errors import InputError
    from tunewise.settings import STAGE_STRATEGY, sharding_conflict

    if zero_stage not in (None, 0, 1, 2, 3):
        return {}  # TrainSettings names the field
    if strategy is None:
        return {"strategy": STAGE_STRATEGY[zero_stage]} if zero_stage else {}
    if strategy == "deepspeed" and not zero_stage:
        raise InputError("--strategy deepspeed needs --zero-stage 1, 2 or 3", field="zero_stage")
    conflict = sharding_conflict(strategy, zero_stage or 0)
    if conflict:  # DDP cannot shard at all: the strategy is the flag to change
        raise InputError(conflict, field="strategy" if strategy == "ddp" else "zero_stage")
    return {"strategy": strategy, "zero_stage": zero_stage or (3 if strategy == "fsdp" else 0)}


def _calibration(opts: dict, hardware):
    """Measured runs on this hardware: --calibrate-from, plus the local history unless --no-history."""
    paths, history = tuple(opts.get("calibrate_from") or ()), not opts.get("no_history")
    if not paths and not history:
        return None
    from advisor.calibration import load_calibration

    return load_calibration(hardware, paths, history=history, catalog_path=opts.get("hardware_file"))
