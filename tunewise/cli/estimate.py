"""`tunewise estimate`."""

import click


@click.command("estimate")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise estimate is not implemented yet")
