"""`tunewise eval` on the command line: bad input is one clear line and a non-zero exit;
a quick evaluation prints its table and writes eval.json.

    .venv/bin/python -m pytest tests/integration/test_eval_cli.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.cli import main
from tunewise.records import (
    EvalRecord,
    EvalSettings,
    RunRecord,
    TaskScore,
    Variant,
    load_eval_record,
)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


DOMAIN = [{"prompt": f"{i}+1=", "choices": [str(i + 1), str(i + 2)], "answer": 0} for i in range(8)]


def _adapter_run(root: Path, base: str) -> Path:
    """A real (untrained) LoRA adapter when `base` is a model folder; else just the files."""
    run_dir = root / "lora"
    if Path(base).is_dir():
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base)
        get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(run_dir / "adapter")
    else:
        (run_dir / "adapter").mkdir(parents=True)
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    RunRecord(name="lora", method="lora", base_model=base, status="completed",
              artifacts={"adapter": "adapter"}).write(run_dir)
    return run_dir


def _fails(capsys, argv: list[str]) -> str:
    code = main(["eval", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_eval_data_missing_fields(tmp_path, capsys):
    run = _adapter_run(tmp_path, "some/base")
    bad = _jsonl(tmp_path / "held.jsonl", [DOMAIN[0], {"prompt": "2+2=", "choices": ["4", "5"]}])
    err = _fails(capsys, [str(run), "--domain", str(bad), "--retention", "none", "--out", str(tmp_path / "o")])
    assert f"{bad}:2 field 'answer': missing" in err


def test_run_folder_without_record(tmp_path, capsys):
    (tmp_path / "not-a-run").mkdir()
    err = _fails(capsys, [str(tmp_path / "not-a-run"), "--domain", str(_jsonl(tmp_path / "d.jsonl", DOMAIN))])
    assert "no record.json" in err


@pytest.mark.slow  # indexes lm-eval's thousands of built-in task YAMLs (tens of seconds)
def test_unknown_task_name(tmp_path, capsys):
    run = _adapter_run(tmp_path, "some/base")
    err = _fails(capsys, [str(run), "--retention", "tw_no_such_task_xyz", "--out", str(tmp_path / "o")])
    assert "unknown lm-eval task 'tw_no_such_task_xyz'" in err


def test_mismatched_settings_between_records(tmp_path, capsys):
    run = _adapter_run(tmp_path, "some/base")
    settings = EvalSettings(batch_size=8, dtype="float32", limit=None, num_fewshot=None, device="cpu",
                            bootstrap_iters=100000)
    score = TaskScore("tw_domain_d_mc", "acc", 0.5, 0.1, 8, "v", 0, samples="samples/base/x.jsonl")
    EvalRecord(base_model="some/base", settings=settings,
               variants=[Variant("base", "base", None, [score])]).write(tmp_path / "old" / "eval.json")
    err = _fails(capsys, [str(run), "--domain", str(_jsonl(tmp_path / "d.jsonl", DOMAIN)), "--retention", "none",
                          "--baseline", str(tmp_path / "old"), "--batch-size", "4", "--dtype", "float32",
                          "--out", str(tmp_path / "o")])
    assert "batch_size differs (8 in" in err


def test_no_tasks_at_all(tmp_path, capsys):
    err = _fails(capsys, [str(_adapter_run(tmp_path, "some/base")), "--retention", "none"])
    assert "nothing to evaluate" in err


@pytest.fixture
def one_thread():
    """A tiny model gains nothing from threads; on a busy machine idle OpenMP workers spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_quick_eval_prints_table_and_writes_record(tmp_path, capsys, random_tiny_model_dir, one_thread):
    run = _adapter_run(tmp_path, str(random_tiny_model_dir))
    domain = _jsonl(tmp_path / "d.jsonl", DOMAIN)
    code = main(["eval", str(run), "--domain", str(domain), "--retention", "none", "--limit", "4",
                 "--batch-size", "2", "--device", "cpu", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "QUICK MODE: --limit 4" in out and "tw_domain_d_mc" in out and "no detectable change" in out
    record = load_eval_record(tmp_path / "out")
    assert record.quick and [v.name for v in record.variants] == ["base", "lora"]
    # MC-only data: the report's example answers are generated (greedy) for every variant
    assert len(record.examples) == 3
    assert all(isinstance(e["outputs"][v], str) for e in record.examples for v in ("base", "lora"))
    # an untrained LoRA (B = 0) is flagged
    assert any(w.startswith("lora:") and "unchanged" in w for w in record.warnings)


# ---------------------------------------------------------------- checked before any model loads


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if evaluation reaches a model load."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr("evals.harness.evaluate_variants", refuse)
    monkeypatch.setattr("tunewise.hub.load_tokenizer", refuse)


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_a_device_this_machine_lacks_is_one_line_before_anything_loads(tmp_path, capsys, no_model_load, device):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = _adapter_run(tmp_path, "some/base")
    out = tmp_path / "o"
    err = _fails(capsys, [str(run), "--domain", str(_jsonl(tmp_path / "d.jsonl", DOMAIN)), "--retention", "none",
                          "--device", device, "--out", str(out)])
    assert "field 'device'" in err and "--device" in err and device in err
    assert not out.exists()


def test_a_corrupt_adapter_is_named_before_the_base_is_evaluated(tmp_path, capsys, tiny_model_dir, monkeypatch):
    run = _adapter_run(tmp_path, str(tiny_model_dir))
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    capsys.readouterr()  # the progress bar of building the adapter
    monkeypatch.setattr("evals.harness.evaluate_variants",
                        lambda *a, **k: pytest.fail("the base was evaluated before the adapter was checked"))
    err = _fails(capsys, [str(run), "--domain", str(_jsonl(tmp_path / "d.jsonl", DOMAIN)), "--retention", "none",
                          "--out", str(tmp_path / "o")])
    assert err.startswith(f"Error: {weights}: corrupt weights file")


def test_an_eval_json_tunewise_did_not_write_is_kept(tmp_path, capsys, no_model_load):
    out = tmp_path / "o"
    out.mkdir()
    (out / "eval.json").write_text('{"mine": 1}')
    err = _fails(capsys, [str(_adapter_run(tmp_path, "some/base")), "--domain", str(_jsonl(tmp_path / "d.jsonl", DOMAIN)),
                          "--retention", "none", "--out", str(out)])
    assert f"{out / 'eval.json'}: not a tunewise eval record" in err
    assert (out / "eval.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in out.iterdir()) == ["eval.json"]


@pytest.mark.slow
def test_re_evaluating_into_a_folder_leaves_only_the_new_records_samples(tmp_path, capsys, random_tiny_model_dir,
                                                                       one_thread):
    out = tmp_path / "out"
    domain = _jsonl(tmp_path / "d.jsonl", DOMAIN)
    settings = EvalSettings(batch_size=2, dtype="float32", limit=2, num_fewshot=None, device="cpu",
                            bootstrap_iters=100000)
    old = [Variant(name, "lora", None, [TaskScore("old_task", "acc", 0.5, 0.1, 2, "v", 0,
                                                  samples=f"samples/{name}/old_task.jsonl")])
           for name in ("base", "gone")]
    EvalRecord(base_model="some/base", settings=settings, variants=old).write(out / "eval.json")
    for name in ("base", "gone"):
        (out / "samples" / name).mkdir(parents=True)
        (out / "samples" / name / "old_task.jsonl").write_text('{"doc_id": 0}\n')
    code = main(["eval", "--base", str(random_tiny_model_dir), "--domain", str(domain), "--retention", "none",
                 "--limit", "2", "--batch-size", "2", "--device", "cpu", "--examples", "0", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = load_eval_record(out)
    listed = sorted(s.samples for v in record.variants for s in v.scores)
    assert listed == ["samples/base/tw_domain_d_mc.jsonl"]
    assert sorted(str(p.relative_to(out)) for p in (out / "samples").rglob("*")) == [
        "samples/base", "samples/base/tw_domain_d_mc.jsonl"]
