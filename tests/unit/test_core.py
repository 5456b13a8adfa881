"""Core shared pieces: errors, atomic writes, schema validation, data reading.

    .venv/bin/python -m pytest tests/unit/test_core.py
"""

import json
import os

import pytest

from tunewise.atomic import atomic_write_json
from tunewise.data import load_dataset
from tunewise.errors import InputError
from tunewise.methods import Method, parse_method
from tunewise.plan import Plan, load_plan
from tunewise.records import RunRecord, load_run_record
from tunewise.settings import TrainSettings


def test_error_line_names_file_line_and_field():
    err = InputError("expected a string", path="d.jsonl", line=3, field="completion")
    assert str(err) == "d.jsonl:3 field 'completion': expected a string"


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})

    def crash(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"ok": 2})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_parse_method_lists_valid_names():
    assert parse_method("LoRA") is Method.LORA
    with pytest.raises(InputError, match="prompt, lora, qlora, full, dpo, rlhf"):
        parse_method("adapter")


def test_settings_reject_impossible_values():
    with pytest.raises(InputError) as exc:
        TrainSettings(batch_size=0)
    assert exc.value.field == "batch_size"
    with pytest.raises(InputError):
        TrainSettings(optimizer="adam9000")


def test_plan_round_trip_and_unknown_schema(tmp_path):
    plan = Plan(method=Method.LORA, model="m", settings=TrainSettings(lora_rank=8))
    path = plan.write(tmp_path / "plan.yaml")
    again = load_plan(path)
    assert again.settings.lora_rank == 8 and again.method is Method.LORA
    text = path.read_text().replace("tunewise/plan/v1", "tunewise/plan/v9")
    path.write_text(text)
    with pytest.raises(InputError, match="unsupported schema"):
        load_plan(path)


def test_plan_rejects_duplicate_and_unknown_keys(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("schema: tunewise/plan/v1\nmethod: lora\nmethod: full\nmodel: m\n")
    with pytest.raises(InputError, match="duplicate key"):
        load_plan(path)
    path.write_text("schema: tunewise/plan/v1\nmethod: lora\nmodel: m\nsettings: {batch: 3}\n")
    with pytest.raises(InputError) as exc:
        load_plan(path)
    assert exc.value.field == "settings.batch"


def test_plan_wrong_type_names_field(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("schema: tunewise/plan/v1\nmethod: lora\nmodel: m\nsettings: {batch_size: four}\n")
    with pytest.raises(InputError) as exc:
        load_plan(path)
    assert exc.value.field == "settings.batch_size" and "plan.yaml" in str(exc.value)


def test_run_record_round_trip(tmp_path):
    rec = RunRecord(name="lora", method="lora", base_model="tiny", status="completed", steps=3)
    rec.write(tmp_path)
    assert load_run_record(tmp_path).steps == 3
    with pytest.raises(InputError, match="not a tunewise run folder"):
        load_run_record(tmp_path / "nope")


@pytest.mark.parametrize(
    "content, line, field",
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n', 2, None),
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', 2, "completion"),
        ('{"messages": [{"role": "robot", "content": "x"}]}\n', 1, "messages[0].role"),
        ('{"prompt": "p", "chosen": "a", "rejected": "a"}\n', 1, "rejected"),
        ('[1, 2]\n', 1, None),
    ],
)
def test_data_errors_name_line_and_field(tmp_path, content, line, field):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as exc:
        load_dataset(path)
    assert exc.value.line == line and exc.value.field == field and exc.value.path == str(path)


def test_data_lenient_mode_keeps_valid_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": ""}\n{"text": "b"}\n')
    data = load_dataset(path, strict=False)
    assert data.format == "text" and len(data) == 2 and data.lines == [1, 4]
    assert [(p.line, p.field) for p in data.problems] == [(3, "text")]


def test_data_expect_preference_names_missing_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n')
    with pytest.raises(InputError, match="needs preference data") as exc:
        load_dataset(path, expect="preference")
    assert exc.value.field == "chosen"


def test_data_csv_and_empty(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("prompt,completion\nq,a\n")
    assert load_dataset(csv_path).rows == [{"prompt": "q", "completion": "a"}]
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_dataset(empty)


def test_data_invalid_utf8(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(InputError, match="UTF-8") as exc:
        load_dataset(path)
    assert exc.value.line == 2
    assert os.path.exists(path)
