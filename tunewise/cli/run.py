"""`tunewise run`."""

import click


@click.command("run")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise run is not implemented yet")
