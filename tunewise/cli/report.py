"""`tunewise report`."""

import click


@click.command("report")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise report is not implemented yet")
