"""`--trust-remote-code` and `--allow-pickle-weights` for the commands that load models.

Both are off by default (tunewise/hub.py has the rules); turning one on prints a warning
on stderr and holds only for that command.
"""

from __future__ import annotations

import functools

import click


def safety_flags(command):
    """Add the two opt-in flags to a click command function (put it under @click.command)."""

    @click.option("--trust-remote-code", is_flag=True, help="Run Python code shipped with the model (off: never).")
    @click.option("--allow-pickle-weights", is_flag=True,
                  help="Also load pickled .bin weights (off: safetensors only).")
    @functools.wraps(command)
    def wrapper(*args, trust_remote_code: bool, allow_pickle_weights: bool, **kwargs):
        from tunewise.hub import opt_in

        with opt_in(trust_code=trust_remote_code, allow_pickle=allow_pickle_weights) as warnings:
            for warning in warnings:
                click.echo(warning, err=True)
            return command(*args, **kwargs)

    return wrapper
