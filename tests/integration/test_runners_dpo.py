"""DPO runner on the tiny model, CPU: first-step loss ln 2, growing margin, starting points.

    .venv/bin/python -m pytest tests/integration/test_runners_dpo.py
"""

from __future__ import annotations

import json
import math

import pytest
from runner_kit import (
    arithmetic_rows,
    make_plan,
    metrics,
    preference_rows,
    snapshot_callback,
    write_jsonl,
)

from runners import run_plan
from tunewise.methods import Method

pytestmark = pytest.mark.slow

LN2 = math.log(2)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    # 8 pairs, batch 8: every step sees the same batch, so its margin must grow.
    return write_jsonl(tmp_path_factory.mktemp("prefs") / "pairs.jsonl", preference_rows(8))


def test_dpo_with_lora_starts_at_ln2_and_the_margin_grows(tiny_model_dir, pairs, tmp_path):
    snap = snapshot_callback()
    record = run_plan(make_plan(tiny_model_dir, Method.DPO, pairs, batch_size=8, max_steps=5), tmp_path,
                      callbacks=[snap])
    rows = metrics(tmp_path / "dpo")
    assert abs(rows[0]["loss"] - LN2) < 1e-3
    margins = [r["reward_margin"] for r in rows]
    assert margins[0] == pytest.approx(0.0, abs=1e-4)  # policy == reference at step 1
    assert margins[-1] > margins[1] > margins[0] and margins[-1] > 0.05
    assert rows[-1]["reward_accuracy"] >= 0.75 and rows[-1]["loss"] < rows[0]["loss"]
    assert record.artifacts["adapter"] == "adapter" and "adapter disabled" in record.extra["reference"]
    base = {k: v for k, v in snap.before.items() if "lora_" not in k}
    assert all((snap.after[k] == v).all() for k, v in base.items()), "DPO+LoRA changed a base weight"
    assert record.trainable_params == record.estimate["trainable_params"]  # advisor, same settings


def test_dpo_continues_an_sft_adapter_against_a_frozen_copy_of_it(tiny_model_dir, pairs, tmp_path):
    sft_data = write_jsonl(tmp_path / "sft.jsonl", arithmetic_rows(12))
    run_plan(make_plan(tiny_model_dir, Method.LORA, sft_data, name="sft"), tmp_path)
    record = run_plan(make_plan(tiny_model_dir, Method.DPO, pairs, batch_size=8, max_steps=2, init_from="sft"),
                      tmp_path)
    # The reference is the SFT adapter itself (not the bare base), so step 0 is still ln 2.
    assert abs(metrics(tmp_path / "dpo")[0]["loss"] - LN2) < 1e-3
    adapter = tmp_path / "dpo" / "adapter"
    assert not (adapter / "ref").exists(), "trl's frozen reference copy leaked into the artifact"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir.resolve()) == record.base_model
    assert record.init_from == "sft" and record.config["start"]["adapter"].endswith("adapter")


def test_full_dpo_after_full_sft_trains_every_weight(tiny_model_dir, pairs, tmp_path):
    sft_data = write_jsonl(tmp_path / "sft.jsonl", arithmetic_rows(12))
    run_plan(make_plan(tiny_model_dir, Method.FULL, sft_data, name="sft"), tmp_path)
    record = run_plan(make_plan(tiny_model_dir, Method.DPO, pairs, batch_size=8, max_steps=2, init_from="sft",
                                learning_rate=1e-4), tmp_path)
    assert abs(metrics(tmp_path / "dpo")[0]["loss"] - LN2) < 1e-3
    assert record.artifacts["model"] == "model" and "frozen copy" in record.extra["reference"]
    assert record.base_model == str(tiny_model_dir.resolve())  # the original base, for comparisons
    assert record.config["start"]["model"].endswith("model")
