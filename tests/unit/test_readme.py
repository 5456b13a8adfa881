"""README.md's command reference is the CLI's own `--help`, and rendering it needs no torch.

    .venv/bin/python -m pytest tests/unit/test_readme.py

When this fails after a change to a command's options or help, regenerate the section:
    .venv/bin/python -m tunewise.cli.reference
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tunewise.cli import all_commands, reference

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "trl", "lm_eval", "bitsandbytes", "accelerate", "pandas", "plotly")


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_command_reference_matches_the_cli():
    text = _readme()
    assert reference.splice(text, reference.render()) == text, (
        "README.md's command reference drifted from the CLI: run python -m tunewise.cli.reference")


def test_every_command_is_in_the_reference():
    section = _readme().split(reference.START, 1)[1].split(reference.END, 1)[0]
    for name in all_commands():
        assert f"$ tunewise {name} --help" in section


def test_a_changed_help_text_is_detected(monkeypatch):
    """The drift check can fail: a one-word change in one option's help changes the render."""
    before = reference.render()
    option = next(p for p in all_commands()["demo"].params if p.name == "quick")
    monkeypatch.setattr(option, "help", option.help + " Changed.")
    after = reference.render()
    assert after != before
    assert reference.splice(_readme(), after) != _readme()


def test_splice_keeps_the_text_around_the_markers():
    text = f"intro\n{reference.START}\nold\n{reference.END}\noutro\n"
    assert reference.splice(text, "new") == f"intro\n{reference.START}\nnew\n{reference.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        reference.splice("no markers here", "new")


def test_the_readme_keeps_the_sections_others_fill():
    text = _readme()
    for marker in ("multi-gpu", "accuracy"):
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end)
    assert "benchmarks/estimate_accuracy.py" in text  # the command that reproduces the accuracy table


def test_rendering_the_reference_imports_no_heavy_library():
    """Every command module keeps torch & co. inside its functions (`--help` stays instant)."""
    code = ("import sys\nfrom tunewise.cli import reference\nreference.render()\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported while rendering --help: {proc.stdout.strip()}"
