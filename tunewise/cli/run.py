"""`tunewise run`: execute a plan (or flags) and say where the record is."""

from __future__ import annotations

from dataclasses import replace

import click

from tunewise.cli._safety import safety_flags
from tunewise.methods import Method
from tunewise.settings import OPTIMIZERS, PRECISIONS

METHODS = tuple(m.value for m in Method)

# flag -> TrainSettings field; a flag given on the command line overrides the plan.
SETTINGS_FLAGS = {
    "max_steps": "max_steps", "epochs": "epochs", "batch_size": "batch_size", "grad_accum": "grad_accum",
    "seq_len": "seq_len", "lr": "learning_rate", "lora_rank": "lora_rank", "lora_targets": "lora_targets",
    "precision": "precision", "optimizer": "optimizer", "replay": "replay", "seed": "seed",
    "save_steps": "save_steps", "logging_steps": "logging_steps", "num_fewshot": "num_fewshot",
    "packing": "packing", "gradient_checkpointing": "gradient_checkpointing", "dpo_beta": "dpo_beta",
    "dpo_lora": "dpo_lora",
}
DATA_FLAGS = {"data": "train", "eval_data": "eval", "general_data": "general"}


@click.command("run")
@click.argument("plan_path", metavar="[PLAN]", required=False, type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(METHODS, case_sensitive=False), help="Method (without a plan).")
@click.option("--model", help="Base model: a local folder or a hub id (cached; runs are offline-safe).")
@click.option("--data", type=click.Path(dir_okay=False), help="Training data (JSONL, JSON, CSV, Parquet).")
@click.option("--eval-data", type=click.Path(dir_okay=False), help="Held-out data (recorded for `tunewise eval`).")
@click.option("--general-data", type=click.Path(dir_okay=False),
              help="General data for --replay (default: the bundled general corpus).")
@click.option("--name", help="Run name: the folder under --out (default: the method).")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last complete checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder of the same name.")
@click.option("--merge", is_flag=True, help="Also write merged/: base + adapter as one plain model.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (GPUs) on all machines together, through accelerate launch (the plan's strategy: "
                   "DDP, FSDP or DeepSpeed).")
@click.option("--num-machines", type=click.IntRange(min=1), default=1, show_default=True,
              help="Machines (nodes) taking part; run the same command on each.")
@click.option("--machine-rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="This machine's rank, 0..num-machines-1 (machine 0 writes the record).")
@click.option("--main-process-ip", help="Address of machine rank 0 (needed with several machines).")
@click.option("--main-process-port", type=click.IntRange(0, 65535),
              help="Rendezvous port on machine 0 (default: a free port on one machine, 29500 on several).")
@click.option("--init-from", help="Start from an earlier run folder (DPO after SFT).")
@click.option("--device", type=click.Choice(("cpu", "cuda", "auto")), default="auto", show_default=True)
@click.option("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
@click.option("--epochs", type=float, help="Passes over the data.")
@click.option("--batch-size", type=int, help="Micro-batch per device.")
@click.option("--grad-accum", type=int, help="Gradient accumulation steps.")
@click.option("--seq-len", type=int, help="Maximum tokens per example.")
@click.option("--lr", "--learning-rate", "lr", type=float, help="Peak learning rate (default: the method's).")
@click.option("--lora-rank", type=int, help="LoRA rank r.")
@click.option("--lora-targets", help="all-linear or a comma list such as q_proj,v_proj.")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Number format (CPU trains fp32 unless forced).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer.")
@click.option("--replay", type=float, help="Fraction of general data mixed into training (forgetting guard).")
@click.option("--seed", type=int, help="Random seed (same seed, same loss curve on CPU).")
@click.option("--save-steps", type=int, help="Checkpoint every N steps (for --resume).")
@click.option("--logging-steps", type=int, help="Log metrics every N steps.")
@click.option("--num-fewshot", type=int, help="Prompt method: demonstrations to choose.")
@click.option("--packing/--no-packing", default=None, help="Pack several examples per sequence.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None, help="Recompute activations.")
@click.option("--dpo-beta", type=float, help="DPO beta (strength of the pull towards the reference).")
@click.option("--dpo-lora/--dpo-full", "dpo_lora", default=None, help="DPO: train an adapter or every weight.")
@safety_flags
def command(plan_path, **opts) -> None:
    """Train (or prepare a prompt) as planned and record what actually happened.

    Flags override the plan.  The run goes to OUT/NAME/: record.json, metrics.jsonl and
    adapter/ (PEFT), model/ (full fine-tuning) or prompt.json (prompting).

    \b
    Example:
      tunewise run plan.yaml
      tunewise run --method lora --model ./my-model --data train.jsonl --max-steps 200
      tunewise run --method dpo --init-from runs/lora --data prefs.jsonl --name dpo
      tunewise run plan.yaml --num-processes 8 --resume
      tunewise run plan.yaml --num-processes 16 --num-machines 2 --machine-rank 0 --main-process-ip 10.0.0.1
    """
    from runners import run_plan

    plan = build_plan(plan_path, opts)
    planned = plan.hardware.count
    if planned > 1 and opts["num_processes"] == 1 and plan.method.trains:  # the usual slip with an advised plan
        click.echo(f"note: the plan is for {planned} GPUs ({plan.settings.strategy}); this run uses one process "
                   f"(add --num-processes {planned} to run it as planned)", err=True)
    record = run_plan(
        plan, opts["out"], resume=opts["resume"], overwrite=opts["overwrite"], merge=opts["merge"],
        num_processes=opts["num_processes"], device=opts["device"], precision_forced=opts["precision"] is not None,
        topology=topology(opts),
    )
    click.echo(summary(record, opts["out"]))


def build_plan(plan_path: str | None, opts: dict):
    """The plan file (or one built from flags), with every given flag applied on top."""
    from tunewise.errors import InputError
    from tunewise.methods import parse_method
    from tunewise.plan import DataSpec, Plan, load_plan

    if plan_path:
        plan = load_plan(plan_path)
    else:
        missing = [f"--{k}" for k in ("method", "model", "data") if not opts[k]]
        if opts["init_from"] and not opts["model"]:
            missing = [m for m in missing if m != "--model"]
        if missing:
            raise InputError(f"give a PLAN file, or {', '.join(missing)}")
        plan = Plan(method=parse_method(opts["method"]), model=opts["model"] or _model_of(opts["init_from"]))
    if opts["method"]:
        plan = replace(plan, method=parse_method(opts["method"]))
    if opts["model"]:
        plan = replace(plan, model=opts["model"])
    data = {field: opts[flag] for flag, field in DATA_FLAGS.items() if opts[flag]}
    settings = {field: opts[flag] for flag, field in SETTINGS_FLAGS.items() if opts[flag] is not None}
    extra = {k: opts[k] for k in ("name", "init_from") if opts[k]}
    return replace(
        plan,
        data=replace(plan.data or DataSpec(), **data),
        settings=plan.settings.replace(**settings),
        **extra,
    )


def topology(opts: dict):
    """Where the processes run (checked: several machines need --main-process-ip, ...)."""
    from runners.accelerate_config import Topology

    return Topology(opts["num_processes"], opts["num_machines"], opts["machine_rank"], opts["main_process_ip"],
                    opts["main_process_port"])


def _model_of(init_from: str) -> str:
    from tunewise.records import load_run_record

    return load_run_record(init_from).base_model


def summary(record, out_dir: str) -> str:
    """A few lines for the terminal: what ran, how it went, where things are."""
    from pathlib import Path

    run_dir = Path(out_dir) / record.name
    if "record_on_machine" in record.extra:
        return (f"{record.method} run '{record.name}': machine {record.extra['machine_rank']} finished its part; "
                f"machine 0 wrote the record ({record.name}/record.json in its --out folder)")
    head = f"{record.method} run '{record.name}' {record.status}"
    if record.method != "prompt":
        loss = f"{record.final_loss:.4g}" if record.final_loss is not None else "n/a"
        head += f": {record.steps} steps, final loss {loss}"
        if record.tokens_per_s:
            head += f", {record.tokens_per_s:,.0f} tokens/s"
        peak = record.peak_memory
        if peak is not None and peak.comparable_gib is not None:
            what = "CUDA reserved" if peak.device == "cuda" else "CPU RSS above baseline"
            head += f", peak memory {peak.comparable_gib:.2f} GiB ({what})"
    lines = [head] + ([spread] if (spread := _per_rank(record)) else []) + [f"record: {run_dir / 'record.json'}"]
    lines += [f"{role}: {run_dir / path}" for role, path in record.artifacts.items() if role != "metrics"]
    return "\n".join(lines)


def _per_rank(record) -> str | None:
    """Several processes: the strategy and each rank's peak (sharding can leave them uneven)."""
    peak = record.peak_memory
    if peak is None or len(peak.per_rank) < 2:
        return None
    key = "reserved_gib" if peak.device == "cuda" else "rss_delta_gib"
    values = [(r["rank"], r.get(key) or 0.0) for r in peak.per_rank]
    if len(values) <= 8:
        shown = ", ".join(f"{rank}: {gib:.2f}" for rank, gib in values)
    else:
        shown = f"min {min(g for _, g in values):.2f}, max {max(g for _, g in values):.2f}"
    strategy = record.config.get("distributed", {}).get("strategy", "ddp")
    return f"{strategy} over {len(values)} processes; peak memory per rank (GiB): {shown}"
