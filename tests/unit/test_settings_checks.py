"""TrainSettings and plan.yaml refuse what training would only fail on later: one field each.

    .venv/bin/python -m pytest tests/unit/test_settings_checks.py
"""

import ast
import importlib.util
from pathlib import Path

import pytest

from tunewise.errors import InputError
from tunewise.plan import load_plan
from tunewise.settings import LR_SCHEDULERS, MAX_SEED, TrainSettings


@pytest.mark.parametrize("changes,field", [
    ({"lr_scheduler": "bogus"}, "lr_scheduler"),
    ({"lora_alpha": -3}, "lora_alpha"),
    ({"lora_alpha": 0}, "lora_alpha"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"weight_decay": float("inf")}, "weight_decay"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"warmup_ratio": float("nan")}, "warmup_ratio"),
])
def test_settings_refuse_values_training_would_fail_on(changes, field):
    with pytest.raises(InputError) as exc:
        TrainSettings(**changes)
    assert exc.value.field == field


def test_the_edges_of_the_ranges_are_accepted():
    TrainSettings(seed=0)
    TrainSettings(seed=MAX_SEED, weight_decay=0.0, lora_alpha=1)
    for name in LR_SCHEDULERS:
        TrainSettings(lr_scheduler=name)


def test_schedulers_are_transformers_scheduler_types():
    assert set(LR_SCHEDULERS) == _installed_scheduler_types()


def _installed_scheduler_types() -> set[str]:
    """transformers.SchedulerType's values, read from the installed source: importing
    transformers.trainer_utils would pull in torch and peft (seconds) for one enum."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("transformers is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "trainer_utils.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    enum = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "SchedulerType")
    return {n.value.value for n in enum.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}


def _plan(tmp_path, body):
    """A plan.yaml with `body` added (its own `data:` line replaces the default one)."""
    data = "" if body.startswith("data:") else "data: {train: d.jsonl}\n"
    path = tmp_path / "plan.yaml"
    path.write_text("schema: tunewise/plan/v1\nmethod: lora\nmodel: gpt2\n" + data + body)
    return path


@pytest.mark.parametrize("body,field", [
    ("settings: {lr_scheduler: bogus}\n", "settings.lr_scheduler"),
    ("settings: {lora_alpha: -3}\n", "settings.lora_alpha"),
    ("settings: {weight_decay: -1}\n", "settings.weight_decay"),
    ("settings: {weight_decay: .nan}\n", "settings.weight_decay"),
    ("settings: {seed: -1}\n", "settings.seed"),
    ("settings: {seed: 18446744073709551616}\n", "settings.seed"),
    ("data: {train: d.jsonl, format: bogus}\n", "data.format"),
    ("hardware: {name: rtx-4090, count: 100000000}\n", "hardware.count"),
    ("hardware: {name: rtx-4090, memory_gib: .nan}\n", "hardware.memory_gib"),
    ("hardware: {name: rtx-4090, memory_gib: .inf}\n", "hardware.memory_gib"),
])
def test_plan_loading_names_the_bad_field(tmp_path, body, field):
    path = _plan(tmp_path, body)
    with pytest.raises(InputError) as exc:
        load_plan(path)
    assert exc.value.path == str(path) and exc.value.field == field


def test_every_data_format_loads(tmp_path):
    for fmt in ("prompt_completion", "messages", "text", "preference"):
        assert load_plan(_plan(tmp_path, f"data: {{train: d.jsonl, format: {fmt}}}\n")).data.format == fmt
