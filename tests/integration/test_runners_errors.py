"""Bad input to `tunewise run`: one clear line, a non-zero exit, no traceback, the record kept.

    .venv/bin/python -m pytest tests/integration/test_runners_errors.py
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from runner_kit import arithmetic_rows, write_jsonl

from tunewise.cli import cli

pytestmark = pytest.mark.slow


def run(*args: str):
    result = CliRunner().invoke(cli, ["run", *args])
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return result.exit_code, errors


def flags(model, data, out, *extra: str) -> list[str]:
    return ["--model", str(model), "--data", str(data), "--out", str(out), "--max-steps", "2", "--seq-len", "96",
            "--logging-steps", "1", *extra]


def record(out, name) -> dict:
    return json.loads((out / name / "record.json").read_text())


def test_dpo_without_chosen_names_the_field_and_keeps_a_record(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "pc.jsonl", arithmetic_rows(4))
    code, errors = run("--method", "dpo", *flags(tiny_model_dir, data, tmp_path / "runs"))
    assert code == 2 and len(errors) == 1
    assert "pc.jsonl:1 field 'chosen'" in errors[0] and "record.json" in errors[0]
    assert record(tmp_path / "runs", "dpo")["status"] == "failed"


def test_nothing_left_after_filtering(tiny_model_dir, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"hello {i}"}]} for i in range(4)]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    code, errors = run("--method", "lora", *flags(tiny_model_dir, data, tmp_path / "runs"))
    assert code == 2 and len(errors) == 1 and "no example left after filtering" in errors[0]
    assert "assistant" in record(tmp_path / "runs", "lora")["error"]


def test_every_example_longer_than_seq_len(tiny_model_dir, tmp_path):
    rows = [{"prompt": "Tell me everything. " * 30, "completion": "Done. " * 30} for _ in range(3)]
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    code, errors = run("--method", "full", *flags(tiny_model_dir, data, tmp_path / "runs"), "--seq-len", "32")
    assert code == 2 and len(errors) == 1
    assert "every example is longer than seq_len=32" in errors[0] and "field 'seq_len'" in errors[0]
    assert record(tmp_path / "runs", "full")["status"] == "failed"


def test_plan_with_an_unknown_schema_version(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("schema: tunewise/plan/v9\nmethod: lora\nmodel: m\n")
    code, errors = run(str(plan), "--out", str(tmp_path / "runs"))
    assert code == 2 and len(errors) == 1 and "plan.yaml" in errors[0] and "unsupported schema" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_nan_loss_stops_records_and_explains(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    weights["model.norm.weight"] = torch.full_like(weights["model.norm.weight"], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    data = write_jsonl(tmp_path / "pc.jsonl", arithmetic_rows(8))
    code, errors = run("--method", "lora", *flags(broken, data, tmp_path / "runs"), "--max-steps", "5")
    assert code == 1 and len(errors) == 1 and "loss became nan" in errors[0] and "step 1" in errors[0]
    rec = record(tmp_path / "runs", "lora")
    assert rec["status"] == "failed" and rec["steps"] == 1 and "nan" in rec["error"]
    assert "adapter" not in rec["artifacts"], "a NaN model was published as the result"


def test_existing_folder_unsafe_name_and_missing_flags(tiny_model_dir, tmp_path):
    out = tmp_path / "runs"
    (out / "prompt").mkdir(parents=True)
    (out / "prompt" / "notes.txt").write_text("mine")
    data = write_jsonl(tmp_path / "pc.jsonl", arithmetic_rows(8))
    code, errors = run("--method", "prompt", *flags(tiny_model_dir, data, out))
    assert code == 2 and "--resume" in errors[0] and "--overwrite" in errors[0]
    code, errors = run("--method", "prompt", *flags(tiny_model_dir, data, out), "--overwrite")
    assert code == 2 and "not a tunewise run folder" in errors[0]
    assert (out / "prompt" / "notes.txt").read_text() == "mine"  # never deleted
    code, errors = run("--method", "prompt", *flags(tiny_model_dir, data, out), "--name", "../escape")
    assert code == 2 and "invalid run name" in errors[0]
    code, errors = run("--method", "lora", "--out", str(out))
    assert code == 2 and "--model" in errors[0] and "--data" in errors[0]
