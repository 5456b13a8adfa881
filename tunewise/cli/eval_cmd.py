"""`tunewise eval` (module named eval_cmd to avoid shadowing the builtin)."""

from __future__ import annotations

import json

import click

from tunewise.cli._safety import safety_flags

DTYPES = ("float32", "bfloat16", "float16")


@click.command("eval")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--domain", "domain", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out domain data (JSONL/JSON/CSV/Parquet): multiple choice {prompt|question, choices, "
                   "answer} and/or exact match {prompt, completion|answer_text} or messages. Repeatable.")
@click.option("--preference", "preference", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out preference pairs {prompt, chosen, rejected}: rate at which chosen is preferred. Repeatable.")
@click.option("--retention", default="builtin", show_default=True,
              help="General-skill tasks: builtin (bundled offline suite), a suite name, lm-eval task names "
                   "(mmlu,hellaswag,... with their data in the local HF cache), or none.")
@click.option("--base", help="Base model folder or hub id (default: the runs' recorded base model).")
@click.option("--out", default="eval", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: eval.json, tasks/, samples/.")
@click.option("--limit", type=click.IntRange(min=1), help="Quick mode: first N examples per task (marked in the record).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Same for every variant.")
@click.option("--dtype", type=click.Choice(DTYPES), help="Weights dtype (default: bfloat16 on a bf16 GPU, else float32).")
@click.option("--device", help="cpu, cuda, cuda:0, mps (default: cuda when available).")
@click.option("--num-fewshot", type=click.IntRange(min=0),
              help="Few-shot examples per prompt (domain: the first K items become the demonstrations).")
@click.option("--chat-template/--no-chat-template", default=False, show_default=True,
              help="Let lm-eval wrap every prompt in the tokenizer's chat template (all variants alike). "
                   "Leave off for data whose prompts are already chat-rendered; messages data is rendered "
                   "with the base's template either way.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Example prompts with base vs tuned generations kept for the report.")
@click.option("--baseline", type=click.Path(),
              help="Reuse the base model's results from an earlier eval.json (or its folder) instead of "
                   "evaluating the base again; refused unless every score-changing setting is identical.")
@click.option("--json", "as_json", is_flag=True, help="Print the eval record JSON instead of the table.")
@safety_flags
def command(**opts) -> None:
    """Measure domain gain and general-skill regression of runs against their base model.

    Every run is compared with the base on the same tasks and settings, per example:
    a paired 95% interval of the difference and a verdict (gain / regression / no
    detectable change).  Writes OUT/eval.json and per-example results in OUT/samples/.

    \b
    Example:
      tunewise eval runs/lora runs/full --domain held_out.jsonl
      tunewise eval runs/dpo --preference prefs_eval.jsonl --retention none --limit 50
      tunewise eval runs/lora --domain held_out.jsonl --retention arc_easy,hellaswag
      tunewise eval runs/new --domain held_out.jsonl --baseline eval/   # base scores from before
    """
    from evals.evaluate import EvalOptions, evaluate

    as_json = opts.pop("as_json")
    opts["apply_chat_template"] = opts.pop("chat_template")
    for name in ("run_dirs", "domain", "preference"):
        opts[name] = list(opts[name])
    record = evaluate(EvalOptions(**opts))
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(render_table(record))
    click.echo(f"\nwrote {opts['out']}/eval.json")


def render_table(record) -> str:
    """Scores per variant, then each run vs base with its paired interval and verdict."""
    lines = [f"base model: {record.base_model}" + ("   (QUICK MODE: --limit "
                                                     f"{record.settings.limit})" if record.quick else "")]
    lines.append(f"{'variant':<14} {'task':<34} {'metric':<12} {'score':>7} {'stderr':>7} {'n':>6}")
    for variant in record.variants:
        for s in variant.scores:
            stderr = f"{s.stderr:.3f}" if s.stderr is not None else "-"
            lines.append(f"{variant.name:<14} {s.task:<34} {s.metric:<12} {s.score:>7.3f} {stderr:>7} {s.n:>6}")
    if record.comparisons:
        lines.append("")
        lines.append(f"{'run':<14} {'task':<34} {'diff':>7}  {'95% CI (paired)':<19} {'p':>7}  verdict")
        for c in record.comparisons:
            p = f"{c.p_value:.3f}" if c.p_value is not None else "-"
            ci = f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
            lines.append(f"{c.run:<14} {c.task:<34} {c.diff:>+7.3f}  {ci:<19} {p:>7}  {c.verdict}")
    lines += [f"warning: {w}" for w in record.warnings]
    return "\n".join(lines)
