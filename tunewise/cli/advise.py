"""`tunewise advise`."""

import click


@click.command("advise")
def command() -> None:
    """(in progress)"""
    raise click.ClickException("tunewise advise is not implemented yet")
