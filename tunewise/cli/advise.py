"""`tunewise advise`: which method, why, and what every method would cost."""

from __future__ import annotations

import json

import click

from tunewise.cli._paths import OutPath
from tunewise.methods import Method
from tunewise.settings import OPTIMIZERS, PRECISIONS, STRATEGIES

GOAL_CHOICES = ("knowledge", "style", "preference", "skill", "format", "safety")
METHOD_CHOICES = tuple(m.value for m in Method)

# flag -> TrainSettings field, for the training settings a user may fix (the rest are derived)
OVERRIDES = {
    "batch_size": "batch_size", "grad_accum": "grad_accum", "seq_len": "seq_len", "epochs": "epochs",
    "learning_rate": "learning_rate", "lora_rank": "lora_rank", "lora_targets": "lora_targets",
    "optimizer": "optimizer", "precision": "precision", "gradient_checkpointing": "gradient_checkpointing",
    "zero_stage": "zero_stage", "num_fewshot": "num_fewshot", "cpu_offload": "cpu_offload",
    "max_steps": "max_steps", "adapter": "dpo_lora", "strategy": "strategy",
}


@click.command("advise")
@click.option("--model", required=True, help="Hub id from the catalog, a config.json, or a local model folder.")
@click.option("--gpu", help="Device name from the hardware catalog (e.g. rtx-4090, a100-80gb, cpu; default: this machine's CPU).")
@click.option("--gpu-mem-gib", type=float, help="Memory per device in GiB (required for a device not in the catalog).")
@click.option("--gpus", "--num-gpus", "gpus", type=int, default=1, show_default=True,
              help="GPUs in all (accelerate's num_processes), spread evenly over --num-nodes.")
@click.option("--num-nodes", type=int, default=1, show_default=True, help="Machines the GPUs are spread over.")
@click.option("--strategy", type=click.Choice(STRATEGIES),
              help="Force the multi-GPU strategy (default: the least sharding that fits).")
@click.option("--hardware-file", type=click.Path(dir_okay=False), help="YAML with extra devices or prices.")
@click.option("--price", "price", type=float, help="Override $ per device-hour.")
@click.option("--data", type=click.Path(dir_okay=False), help="Training data (JSONL, JSON, CSV, Parquet).")
@click.option("--eval-data", type=click.Path(dir_okay=False), help="Held-out data (checked for overlap with --data).")
@click.option("--examples", type=int, help="Without --data: plan for this many examples.")
@click.option("--tokens-per-example", type=float, help="Without --data: average tokens per example.")
@click.option("--tokenizer", type=click.Path(dir_okay=False), help="tokenizer.json for exact token counts "
              "(default: the model's own when it is on disk).")
@click.option("--budget-usd", type=float, help="Most you want to spend on training.")
@click.option("--max-hours", type=float, default=72.0, show_default=True,
              help="Longest training run worth planning (longer candidates are marked too-slow).")
@click.option("--tasks", type=int, default=1, show_default=True, help="How many tasks/adapters you serve and switch between.")
@click.option("--goal", type=click.Choice(GOAL_CHOICES, case_sensitive=False),
              help="knowledge (new facts/skills), style (tone/format), preference (preferences/safety).")
@click.option("--preserve-general", is_flag=True, help="Keep general skills: replay general data, lower LR.")
@click.option("--method", type=click.Choice(METHOD_CHOICES, case_sensitive=False), help="Force a method.")
@click.option("--online-rl", is_flag=True, help="You need an explicit reward model or online RL (learning from the model's own samples): recommend RLHF over DPO for preference pairs.")
@click.option("--batch-size", type=int, help="Micro-batch per device (default: largest that fits).")
@click.option("--grad-accum", type=int, help="Gradient accumulation steps.")
@click.option("--seq-len", type=int, help="Sequence length (default: the data's p95).")
@click.option("--epochs", type=float, help="Passes over the data.")
@click.option("--learning-rate", type=float, help="Peak learning rate.")
@click.option("--lora-rank", type=int, help="LoRA rank r.")
@click.option("--lora-targets", help="q_proj,v_proj | all-linear | a comma list.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer.")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Training precision.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None, help="Recompute activations.")
@click.option("--zero-stage", type=click.IntRange(0, 3), help="ZeRO / FSDP sharding stage over --gpus.")
@click.option("--num-fewshot", type=int, help="Prompt method: demonstrations in the prompt.")
@click.option("--cpu-offload/--no-cpu-offload", "--offload/--no-offload", "cpu_offload", default=None,
              help="Optimizer states and gradients (ZeRO-3 / FSDP: also weights) in CPU RAM.")
@click.option("--max-steps", type=int, help="Optimizer steps (overrides epochs).")
@click.option("--adapter/--no-adapter", default=None,
              help="DPO/RLHF: train a LoRA adapter (default; reference = adapter disabled) or all weights.")
@click.option("--calibrate-from", "calibrate_from", multiple=True, type=click.Path(),
              help="Learn MFU and memory overhead for this hardware from measured runs: runs/, a run folder, "
                   "a record.json or a history .jsonl (repeatable).")
@click.option("--no-history", is_flag=True,
              help="Do not learn from the local run history ($TUNEWISE_HOME/history.jsonl, ./runs).")
@click.option("--probe", is_flag=True, help="Train the advised plan for a few steps on this machine and report "
              "measured throughput, peak memory, time and cost (needs torch; the run joins the history).")
@click.option("--probe-steps", type=click.IntRange(min=2), default=10, show_default=True,
              help="Optimizer steps of --probe.")
@click.option("--probe-data", is_flag=True, help="Short LoRA runs on 25/50/100%% of --data; fit held-out loss "
              "against examples and say how many more examples the target needs.")
@click.option("--probe-data-steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="--probe-data: most optimizer steps of the largest run.")
@click.option("--target-loss", type=float, help="--probe-data: the held-out loss to reach.")
@click.option("--target-improvement", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="--probe-data without --target-loss: relative held-out loss reduction to reach.")
@click.option("--json", "as_json", is_flag=True, help="Print the advice/v1 JSON.")
@click.option("--out", type=OutPath(dir_okay=False), help="Write the plan here (plan.yaml) for `tunewise run`.")
def command(**opts) -> None:
    """Recommend prompt, LoRA, QLoRA, full fine-tuning, DPO or RLHF, with numbers for each.

    \b
    Example:
      tunewise advise --model meta-llama/Llama-3.1-8B --data train.jsonl --gpu rtx-4090 --out plan.yaml
      tunewise advise --model Qwen/Qwen2.5-7B --examples 50000 --tokens-per-example 600 \\
          --gpu a100-80gb --gpus 8 --budget-usd 500 --json
    """
    from advisor.advise import AdviceRequest, advise
    from tunewise.errors import InputError
    from tunewise.methods import Method

    if (opts["probe"] or opts["probe_data"]) and not opts["data"]:  # before any advice is printed or written
        flag = "probe" if opts["probe"] else "probe_data"
        raise InputError(f"--{flag.replace('_', '-')} trains on your data: pass --data", field=flag)
    overrides = {field: opts[flag] for flag, field in OVERRIDES.items() if opts[flag] is not None}
    request = AdviceRequest(
        model=opts["model"], gpu=opts["gpu"], gpu_mem_gib=opts["gpu_mem_gib"], gpus=opts["gpus"],
        nodes=opts["num_nodes"],
        data=opts["data"], eval_data=opts["eval_data"], examples=opts["examples"],
        tokens_per_example=opts["tokens_per_example"], budget_usd=opts["budget_usd"],
        max_hours=opts["max_hours"], tasks=opts["tasks"],
        goal=opts["goal"], preserve_general=opts["preserve_general"],
        method=Method(opts["method"].lower()) if opts["method"] else None, overrides=overrides,
        online_rl=opts["online_rl"],
        price_usd_per_hour=opts["price"], hardware_file=opts["hardware_file"], tokenizer=opts["tokenizer"],
        calibrate_from=tuple(opts["calibrate_from"]), history=not opts["no_history"],
    )
    advice = advise(request)
    if opts["out"]:
        advice.write_plan(opts["out"])
    if opts["as_json"]:
        out = advice.to_dict()
        out.update(_measurements(advice, opts))
        click.echo(json.dumps(out, indent=2, default=str))
        return
    from tunewise.cli.advice_text import render

    click.echo(render(advice))
    if opts["probe"] or opts["probe_data"]:
        from tunewise.cli.probe_text import render_curve, render_probe

        measured = _measurements(advice, opts)
        if "probe" in measured:
            click.echo("\n" + render_probe(measured["probe"]))
        if "data_probe" in measured:
            click.echo("\n" + render_curve(measured["data_probe"]))


def _measurements(advice, opts: dict) -> dict:
    """--probe and --probe-data (torch is imported only here, only when asked)."""
    out: dict = {}
    if opts["probe"]:
        from runners.probe import probe

        out["probe"] = probe(advice, steps=opts["probe_steps"]).to_dict()
    if opts["probe_data"]:
        from runners.data_probe import probe_data

        curve = probe_data(advice, max_steps=opts["probe_data_steps"], target_loss=opts["target_loss"],
                           target_improvement=opts["target_improvement"])
        out["data_probe"] = curve.to_dict()
    return out
