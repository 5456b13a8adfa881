"""The `tunewise` command line: a thin click layer over the library.

Each command lives in its own module here and follows one shape: parse flags, build a
dataclass, call one library function, render.  Command modules import only click at
module level so that `tunewise advise` starts fast and never imports torch.
"""

from __future__ import annotations

import sys

import click

from tunewise import __version__
from tunewise.errors import TunewiseError


class UserFacingError(click.ClickException):
    """One line on stderr, no traceback; exit code from the underlying error."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# command name -> module under tunewise.cli; a module is imported only when its command
# runs (or help lists it), so `tunewise advise` does not pay for importing the others.
COMMANDS = {"advise": "advise", "demo": "demo", "estimate": "estimate", "eval": "eval_cmd",
            "report": "report", "run": "run"}


class TunewiseGroup(click.Group):
    """A click group that turns our errors into one clear line and an exit code, and loads
    each command's module lazily (click's documented LazyGroup pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import importlib

            module = importlib.import_module(f"tunewise.cli.{COMMANDS[cmd_name]}")
            self.add_command(module.command, cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TunewiseError as exc:
            raise UserFacingError(str(exc), exc.exit_code) from None
        except OSError as exc:  # an output folder not writable, a path through a file, a full disk
            raise UserFacingError(os_error_line(exc), 2) from None
        except click.UsageError as exc:
            # click prints usage + hint + error on three lines; a bad flag is one line like
            # every other bad input, with where to look for the right spelling.
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            message = " ".join(exc.format_message().split())
            raise UserFacingError(f"{message} (see '{where} --help')", exc.exit_code) from None


def os_error_line(exc: OSError) -> str:
    """One line for a failed read or write: the path(s), then what the system said."""
    from pathlib import Path

    what = exc.strerror or type(exc).__name__
    if exc.filename is None:
        return f"{what}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    path = Path(str(exc.filename))
    if path.name.startswith(".") and path.name.endswith(".tmp"):  # our atomic writes' temp file
        return f"cannot write into {path.parent}: {what}"
    if isinstance(exc, FileExistsError | NotADirectoryError) and path.is_file():
        return f"{path}: a file is in the way where a folder is needed"
    return f"{path}" + (f" -> {exc.filename2}" if exc.filename2 else "") + f": {what}"


@click.group(cls=TunewiseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tunewise")
def cli() -> None:
    """Choose how to specialise an LLM, run it, measure gain and forgetting, report.

    \b
    Typical journey:
      tunewise advise --model Qwen/Qwen2.5-7B --data train.jsonl --gpu rtx-4090 --out plan.yaml
      tunewise run plan.yaml
      tunewise eval runs/lora --domain held_out.jsonl
      tunewise report runs/ -o report.html
    """
    from tunewise.hub import default_offline

    default_offline()  # before any hub library is imported: never reach a hub unasked


def all_commands() -> dict[str, click.Command]:
    """Every command, loaded (for the command reference and tests)."""
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code instead of raising SystemExit."""
    try:
        cli.main(args=argv, prog_name="tunewise", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
