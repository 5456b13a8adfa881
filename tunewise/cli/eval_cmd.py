"""`tunewise eval` (module named eval_cmd to avoid shadowing the builtin)."""

import click


@click.command("eval")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise eval is not implemented yet")
