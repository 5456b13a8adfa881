"""Error types.  Every error a user can cause is a TunewiseError with one clear line.

The CLI turns these into a single `Error: ...` line and a non-zero exit (2 for bad
input, 1 for a failure while executing) without a traceback.
"""

from __future__ import annotations

from os import PathLike


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most `limit` characters (the type name
    when it has none): library errors span pages, a tunewise error is one line."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


class TunewiseError(Exception):
    """Base class: a message plus, where known, the file, line and field it is about."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line is not None else "")
        if self.field:
            where = f"{where} field '{self.field}'" if where else f"field '{self.field}'"
        return f"{where}: {self.message}" if where else self.message


class InputError(TunewiseError):
    """Bad input from the user: a file, a flag, a plan, a dataset.  Exit code 2."""

    exit_code = 2


class UnknownModelError(InputError):
    """A model id that is neither in the catalog nor a local config."""


class UnknownHardwareError(InputError):
    """A GPU name we do not know; we ask for --gpu-mem-gib instead of guessing."""


class InfeasibleError(InputError):
    """Settings that cannot work (e.g. a plan that does not fit the hardware)."""


class RunFailedError(TunewiseError):
    """Training or evaluation failed while executing; the record is kept."""

    exit_code = 1
