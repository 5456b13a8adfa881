"""`tunewise report`: run folders, eval.json and advice JSON -> one self-contained HTML page."""

from __future__ import annotations

import click

from tunewise.cli._paths import OutPath


@click.command("report")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-o", "--out", "out", default="report.html", show_default=True, type=OutPath(dir_okay=False),
              help="HTML file to write (atomically).")
@click.option("--advice", type=click.Path(dir_okay=False), help="advice JSON from `tunewise advise --json`.")
@click.option("--eval", "eval_path", type=click.Path(), help="eval.json from `tunewise eval` (or its folder).")
@click.option("--title", default=None, help="Page title.")
def command(paths: tuple[str, ...], out: str, advice: str | None, eval_path: str | None, title: str | None) -> None:
    """Render one HTML page (plotly.js inlined, opens offline) for stakeholders.

    PATHS are run folders, a folder of runs (e.g. runs/), or eval.json / advice JSON files;
    eval.json and advice.json inside a given folder are found automatically.  Partial
    input works: the page says what is missing.

    \b
    Example:
      tunewise report runs/ --eval eval/eval.json --advice advice.json -o report.html
    """
    from reports.render import build_report

    written = build_report(paths, out, advice=advice, eval_path=eval_path, title=title)
    click.echo(f"wrote {written}")
