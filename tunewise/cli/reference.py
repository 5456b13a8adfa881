"""The README's command reference, generated from the CLI's own `--help`.

    python -m tunewise.cli.reference            # rewrite README.md between the markers
    python -m tunewise.cli.reference --check    # exit 1 if README.md is out of date

The text between `<!-- commands:start -->` and `<!-- commands:end -->` is exactly
`render()`: `tunewise --help` and then each command's help, formatted at a fixed width so
the output does not depend on the terminal.  tests/unit/test_readme.py fails when README.md
and the CLI drift apart.  Imports click and the command modules only (no torch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

START, END = "<!-- commands:start -->", "<!-- commands:end -->"
WIDTH = 100
README = Path(__file__).resolve().parents[2] / "README.md"


def render() -> str:
    """Markdown: one fenced block per command, the group first."""
    from tunewise.cli import cli

    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(cli, info_name="tunewise", **settings)
    parts = ["```text\n$ tunewise --help\n" + cli.get_help(root).rstrip() + "\n```"]
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        ctx = click.Context(command, info_name=name, parent=root, terminal_width=WIDTH, max_content_width=WIDTH)
        parts.append(f"### `tunewise {name}`\n\n```text\n$ tunewise {name} --help\n"
                     + command.get_help(ctx).rstrip() + "\n```")
    return "\n\n".join(parts)


def splice(text: str, body: str) -> str:
    """`text` with the part between the markers replaced by `body` (markers kept)."""
    try:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"README.md needs the markers {START} and {END}") from None
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = README.read_text(encoding="utf-8")
    updated = splice(text, render())
    if "--check" in args:
        if updated != text:
            print("README.md command reference is out of date: run python -m tunewise.cli.reference",
                  file=sys.stderr)
            return 1
        return 0
    if updated != text:
        from tunewise.atomic import atomic_write_text

        atomic_write_text(README, updated)
        print(f"updated {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
