"""`tunewise demo`: advise -> run -> eval -> report on the bundled tiny model and data."""

from __future__ import annotations

import click

from tunewise.cli._paths import OutPath
from tunewise.demo.plans import DEMO_METHODS

DEFAULT_METHODS = ",".join(m.value for m in DEMO_METHODS)


@click.command("demo")
@click.option("--methods", default=DEFAULT_METHODS, show_default=True,
              help="Methods to run, comma-separated (prompt, lora, qlora, full, dpo, rlhf). "
                   "dpo starts from the lora run, so it adds lora.")
@click.option("--out", default="tunewise-demo", show_default=True, type=OutPath(file_okay=False),
              help="Output folder. Only an empty folder or an earlier demo's is used; the earlier demo "
                   "is replaced when the new one completes.")
@click.option("--quick", is_flag=True, help="Fewer training steps (CI); still shows a domain gain.")
def command(methods: str, out: str, quick: bool) -> None:
    """The whole journey on the bundled tiny model, offline, in minutes on a CPU.

    \b
    1. advise: the data-size ladder (50 / 500 / 1,980 examples) and real models on real GPUs
    2. run:    each method on the tiny model (1.2M parameters)
    3. eval:   domain gain and general-skill forgetting vs the base, paired 95% intervals
    4. report: one self-contained HTML page
    Progress goes to stderr; the tables and the report's path to stdout.

    \b
    Example:
      tunewise demo
      tunewise demo --methods prompt,lora --quick --out demo-quick
    """
    from tunewise.demo import DemoOptions, parse_methods, run_demo
    from tunewise.demo.ladder import render as render_ladder
    from tunewise.demo.output import display
    from tunewise.demo.summary import render as render_summary

    result = run_demo(DemoOptions(methods=tuple(parse_methods(methods)), out=out, quick=quick))
    click.echo("Advice (advisor on the data-size ladder and on real GPUs; files in "
               f"{display(result.folder / 'advice')}):")
    click.echo(render_ladder(result.ladder))
    click.echo("\nMeasured on the tiny model vs its base (pp = percentage points of accuracy; + gain, "
               "! regression; RSS +MiB = the training's peak resident-memory growth):")
    click.echo(render_summary(result.summary))
    click.echo(f"\nfolder: {display(result.folder)}")
    click.echo(f"report: {display(result.report)}")
    click.echo(f"time:   {result.wall_s:.0f} s{' (quick)' if quick else ''}")
