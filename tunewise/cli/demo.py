"""`tunewise demo`."""

import click


@click.command("demo")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise demo is not implemented yet")
