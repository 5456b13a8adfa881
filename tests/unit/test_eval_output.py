"""The eval output folder: a foreign eval.json is never replaced, a tunewise one is replaced
whole with its samples, and no samples outlive the record that listed them.

    .venv/bin/python -m pytest tests/unit/test_eval_output.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.output import prepare_output, write_output
from tunewise.errors import InputError
from tunewise.records import EvalRecord, EvalSettings, TaskScore, Variant, load_eval_record

SETTINGS = EvalSettings(batch_size=8, dtype="float32", limit=None, num_fewshot=None, device="cpu",
                        bootstrap_iters=1000)


def _record(names: list[str], task: str = "t") -> EvalRecord:
    variants = [Variant(n, "base" if n == "base" else "lora", None,
                        [TaskScore(task, "acc", 0.5, 0.1, 2, "v", 0, samples=f"samples/{n}/{task}.jsonl")])
                for n in names]
    return EvalRecord(base_model="some/base", settings=SETTINGS, variants=variants)


def _evaluate(out: Path, names: list[str], task: str = "t") -> None:
    """What `tunewise eval` does with its folder: check first, write at the end."""
    folder = prepare_output(out, names)
    rows = {n: {f"{task}.jsonl": [{"doc_id": 0, "score": 1.0, "variant": n}]} for n in names}
    write_output(folder, _record(names, task), rows)


def _tree(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("content", ['{"mine": 1}', "not json at all", '{"schema": "tunewise/advice/v1"}'])
def test_a_file_that_is_not_a_tunewise_eval_record_is_refused_and_kept(tmp_path, content):
    (tmp_path / "eval.json").write_text(content)
    with pytest.raises(InputError) as caught:
        prepare_output(tmp_path, ["base", "lora"])
    assert str(caught.value).startswith(f"{tmp_path / 'eval.json'}")
    assert "not a tunewise eval record" in str(caught.value) and "refusing to replace" in str(caught.value)
    assert (tmp_path / "eval.json").read_text() == content
    assert _tree(tmp_path) == ["eval.json"]


def test_re_evaluating_replaces_the_record_and_its_samples_whole(tmp_path):
    _evaluate(tmp_path, ["base", "lora", "full"], task="old_task")
    _evaluate(tmp_path, ["base", "lora"], task="new_task")
    assert _tree(tmp_path) == ["eval.json", "samples/base/new_task.jsonl", "samples/lora/new_task.jsonl"]
    record = load_eval_record(tmp_path)
    assert [v.name for v in record.variants] == ["base", "lora"]
    for variant in record.variants:
        for score in variant.scores:
            assert (tmp_path / score.samples).is_file()


def test_the_record_is_replaced_by_rename_not_rewritten_in_place(tmp_path):
    _evaluate(tmp_path, ["base"])
    before = (tmp_path / "eval.json").stat().st_ino
    _evaluate(tmp_path, ["base"])
    assert (tmp_path / "eval.json").stat().st_ino != before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_samples_folder_with_files_tunewise_did_not_write_is_refused(tmp_path):
    _evaluate(tmp_path, ["base", "lora"])
    (tmp_path / "samples" / "lora" / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    with pytest.raises(InputError, match="holds files tunewise did not write"):
        prepare_output(tmp_path, ["base"])  # lora would be removed as stale
    assert _tree(tmp_path) == before


def test_a_failed_write_leaves_the_earlier_record_and_its_samples(tmp_path, monkeypatch):
    _evaluate(tmp_path, ["base"])
    before = {p: (tmp_path / p).read_bytes() for p in _tree(tmp_path)}
    folder = prepare_output(tmp_path, ["base"])
    monkeypatch.setattr("evals.output.write_rows", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_output(folder, _record(["base"]), {"base": {"t.jsonl": [{"doc_id": 0}]}})
    assert {p: (tmp_path / p).read_bytes() for p in _tree(tmp_path)} == before
    assert json.loads((tmp_path / "eval.json").read_text())["schema"] == "tunewise/eval/v1"
