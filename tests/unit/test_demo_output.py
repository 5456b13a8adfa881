"""The demo's output folder: never touch a user's folder, never publish half a demo.

    .venv/bin/python -m pytest tests/unit/test_demo_output.py
"""

import json

import pytest

from tunewise.demo import output
from tunewise.demo.plans import parse_methods
from tunewise.errors import InputError
from tunewise.methods import Method


def _complete(out, work, text="new report"):
    (work / output.REPORT).write_text(text)
    return output.publish(out, work, {"wall_s": 1.0})


def test_a_folder_without_the_marker_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "results.csv").write_text("mine")
    with pytest.raises(InputError, match="not a tunewise demo output"):
        output.claim(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_file_is_refused(tmp_path):
    target = tmp_path / "report"
    target.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        output.claim(target)


def test_a_new_or_empty_folder_is_claimed_with_the_marker(tmp_path):
    for out in (tmp_path / "new" / "demo", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        assert output.claim(out) == out
        assert json.loads((out / output.MARKER).read_text())["schema"] == "tunewise/demo-folder/v1"
        assert output.claim(out) == out  # an earlier demo's folder is accepted


def test_publish_replaces_the_previous_demo_only_when_the_new_one_completes(tmp_path):
    out = output.claim(tmp_path / "demo")
    first = output.new_subfolder(out)
    _complete(out, first, "first")
    second = output.new_subfolder(out)
    assert second != first
    (second / "runs").mkdir()  # in progress: the first demo is still the published one
    assert (out / output.REPORT).read_text() == "first" and first.is_dir()
    report = _complete(out, second, "second")
    assert report.read_text() == "second"
    assert not first.exists() and second.is_dir()
    assert output.read_latest(out)["folder"] == second.name


def test_a_failed_demo_keeps_the_published_one_and_is_marked_failed(tmp_path):
    out = output.claim(tmp_path / "demo")
    first = output.new_subfolder(out)
    _complete(out, first, "first")
    second = output.new_subfolder(out)
    with pytest.raises(RuntimeError), output.attempt(second):
        (second / "runs").mkdir()
        raise RuntimeError("training failed")
    assert not second.exists()
    assert (out / (second.name + output.FAILED_SUFFIX) / "runs").is_dir()  # kept for diagnosis
    assert (out / output.REPORT).read_text() == "first"
    assert output.read_latest(out)["folder"] == first.name
    third = output.new_subfolder(out)
    _complete(out, third, "third")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [third.name]  # the failed one is pruned


def test_methods_are_parsed_in_pipeline_order_and_dpo_brings_its_lora_start():
    assert parse_methods("dpo,prompt") == [Method.PROMPT, Method.LORA, Method.DPO]
    assert parse_methods(" FULL , lora ") == [Method.LORA, Method.FULL]
    assert parse_methods("rlhf") == [Method.RLHF]
    with pytest.raises(InputError, match="unknown method ppo"):
        parse_methods("lora,ppo")
    with pytest.raises(InputError, match="none"):
        parse_methods(" , ")


def test_the_ladder_gets_the_textbook_answers_from_the_advisor(tmp_path):
    """Real advisor calls on the bundled ladder (no torch): small -> prompt, medium -> an adapter,
    large with a budget -> full; every row keeps its advice JSON and plan."""
    from tunewise.demo.ladder import render, run_ladder
    from tunewise.demo.plans import bundled

    data = bundled()
    rows = run_ladder(tmp_path, data.model, data.ladder)
    assert [r.method for r in rows][:7] == ["prompt", "lora", "lora", "prompt", "lora", "lora", "full"]
    assert all(r.as_expected is not False for r in rows), render(rows)
    for row in rows:
        assert json.loads((tmp_path / f"{row.example.key}.json").read_text())["recommendation"]["method"] == row.method
        assert (tmp_path / f"{row.example.key}.plan.yaml").is_file()
    assert "textbook" not in render(rows)


def test_a_ladder_row_off_the_textbook_is_marked():
    from tunewise.demo.ladder import Example, Row, render

    row = Row(Example("k", "tiny, 50 examples", {}, expect="prompt"), "lora", "lora-fits", "", 1.0, 0.1, None)
    assert not row.as_expected
    assert "(textbook: prompt)" in render([row])


def test_the_summary_reads_gain_forgetting_memory_and_time_from_the_records():
    from pathlib import Path

    from tunewise.demo.summary import render, summarise
    from tunewise.records import load_eval_record, load_run_record

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "complete"
    records = {m: load_run_record(fixture / "runs" / m) for m in ("lora", "qlora", "full", "dpo")}
    rows = {r.run: r for r in summarise(records, load_eval_record(fixture / "eval" / "eval.json"))}
    assert rows["lora"].domain_gain and rows["lora"].domain_pp == pytest.approx(14.5)
    assert not rows["dpo"].domain_gain  # its domain interval includes zero
    assert rows["qlora"].retention_verdict == "regression" and rows["qlora"].retention_pp < 0
    assert rows["full"].domain_pp is None  # no comparison in eval.json: shown as "-", never invented
    assert rows["dpo"].preference_verdict == "gain"
    table = render(list(rows.values()))
    assert "dpo: held-out preference pairs" in table and "+21.0" in table
    assert rows["lora"].peak_mib == pytest.approx(records["lora"].peak_memory.allocated_gib * 1024, abs=0.1)
