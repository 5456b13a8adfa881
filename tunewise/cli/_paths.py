"""Output paths on the command line: click.Path, minus the empty string.

click accepts `--out ""`; the commands would then write into the current folder (run),
nowhere (advise) or fail on '.' (report).  An empty output path is refused like any other
bad flag, in one line.
"""

from __future__ import annotations

import click


class OutPath(click.Path):
    """A click.Path that refuses the empty string."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path; name a file or folder", param, ctx)
        return super().convert(value, param, ctx)
