"""The report's RLHF section: reward curve, KL to the reference, reward-model accuracy.

    .venv/bin/python -m pytest -q tests/unit/test_report_rlhf.py

Run folders are written the way runners/rlhf.py writes them (record.json + metrics.jsonl)
and read back through the report's own loader.
"""

from __future__ import annotations

import json

import pytest

from reports import figures_rlhf
from reports.inputs import collect_inputs
from reports.sections import build_content
from tunewise.records import RunRecord

REWARDS = [-5.0, -4.6, -4.1, -3.9]
KLS = [0.0, 0.2, 0.35, 0.4]


def write_run(root, name, method, metrics, extra=None):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    record = RunRecord(name=name, method=method, base_model="tiny", status="completed",
                       artifacts={"adapter": "adapter", "metrics": "metrics.jsonl"}, extra=extra or {})
    record.write(run_dir)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run_dir


def rlhf_extra(accuracy=0.79):
    return {"rlhf": {
        "algorithm": "rloo", "reward_model_accuracy": accuracy,
        "stages": {"reward_model": {"accuracy": accuracy, "pairs": 97}},
        "reward": {"first": -5.0, "last": -3.9}, "kl": {"first": 0.0, "last": 0.4},
        "held_out": {"prompts": 64, "reference": -4.8, "policy": -4.5, "improved_share": 0.7},
    }}


@pytest.fixture
def runs(tmp_path):
    rl = [{"step": i + 1, "loss": 0.0, "reward": r, "kl": k} for i, (r, k) in enumerate(zip(REWARDS, KLS, strict=True))]
    write_run(tmp_path, "rlhf", "rlhf", rl, rlhf_extra())
    write_run(tmp_path, "lora", "lora", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    return collect_inputs([tmp_path])


def _trace(fig, start):
    return next(t for t in fig.data if t.name.startswith(start))


def test_reward_and_kl_curves_with_the_reward_model_accuracy(runs):
    fig = figures_rlhf.rlhf_figure(runs.runs)
    reward = _trace(fig, "rlhf (reward model accuracy 79%)")
    assert list(reward.y) == REWARDS and list(reward.x) == [1, 2, 3, 4]
    kl = _trace(fig, "rlhf KL")
    assert list(kl.y) == KLS and kl.yaxis == "y2"
    assert not any(t.name.startswith("lora") for t in fig.data)  # SFT runs have no reward curve


def test_summary_row_states_algorithm_accuracy_windows_and_held_out_check(runs):
    (row,) = figures_rlhf.summary_rows(runs.runs)
    assert row == ("rlhf", "rloo", "79.0% of 97 held-out pairs", "-5 → -3.9", "0 → 0.4",
                   "-4.8 → -4.5 on 64 prompts (70% improved)")


def test_the_section_appears_only_with_an_rlhf_run(runs, tmp_path):
    content = build_content(runs)
    section = next(s for s in content.sections if s.key == "rlhf")
    assert section.figure is not None and "79.0% of 97 held-out pairs" in section.body_html
    only_sft = tmp_path / "sft_only"
    write_run(only_sft, "lora", "lora", [{"step": 1, "loss": 2.0}])
    assert all(s.key != "rlhf" for s in build_content(collect_inputs([only_sft])).sections)


def test_hostile_run_names_are_escaped(tmp_path):
    write_run(tmp_path, "x", "rlhf", [{"step": 1, "loss": 0.0, "reward": 1.0}], rlhf_extra())
    record = json.loads((tmp_path / "x" / "record.json").read_text())
    record["name"] = "<img src=x onerror=alert(1)>"
    (tmp_path / "x" / "record.json").write_text(json.dumps(record))
    inputs = collect_inputs([tmp_path])
    fig = figures_rlhf.rlhf_figure(inputs.runs)
    assert all("<img" not in t.name for t in fig.data)
    section = next(s for s in build_content(inputs).sections if s.key == "rlhf")
    assert "<img" not in section.body_html and "&lt;img" in section.body_html
