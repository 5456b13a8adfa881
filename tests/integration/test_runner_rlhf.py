"""RLHF runner on the bundled tiny model, CPU: SFT -> reward model -> RLOO, and what each
stage must show (reward model ranks held-out pairs, the policy raises the reward).

    .venv/bin/python -m pytest tests/integration/test_runner_rlhf.py

One full run with the demo settings (runners/rlhf.py DEMO_SETTINGS) is shared by the
first tests; the others use a few steps to check the other starting points and bad input.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from runner_kit import (
    arithmetic_rows,
    chat_rows,
    make_plan,
    metrics,
    preference_rows,
    snapshot_callback,
    write_jsonl,
)

from runners import run_plan
from runners.rlhf import demo_plan
from tunewise.errors import InputError
from tunewise.methods import Method

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle():
    from tunewise.assets import demo_data_path, tiny_model_path

    try:
        return (tiny_model_path(), demo_data_path("preferences_train.jsonl"), demo_data_path("preferences_eval.jsonl"))
    except (FileNotFoundError, KeyError) as exc:
        pytest.skip(f"bundled tiny model or preference data missing: {exc}")


@pytest.fixture(scope="module")
def demo_run(bundle, tmp_path_factory):
    model, train, held_out = bundle
    out = tmp_path_factory.mktemp("rlhf")
    snap = snapshot_callback()
    record = run_plan(demo_plan(str(model), str(train), str(held_out)), out, callbacks=[snap])
    return out / "rlhf", record, snap


def test_the_reward_model_ranks_held_out_pairs(demo_run, bundle):
    run_dir, record, _ = demo_run
    rm = record.extra["rlhf"]["stages"]["reward_model"]
    assert rm["pairs"] == sum(1 for line in bundle[2].read_text().splitlines() if line.strip())
    # Better than chance beyond doubt: exact one-sided binomial test against p = 0.5.
    accuracy = record.extra["rlhf"]["reward_model_accuracy"]
    assert _binomial_tail(round(accuracy * rm["pairs"]), rm["pairs"]) < 0.01, accuracy
    # The published reward_model/ is the model that was measured: score it again, independently.
    assert _pair_accuracy(run_dir / "reward_model", bundle[2]) == pytest.approx(rm["accuracy"], abs=1e-6)
    first, last = metrics_of(run_dir / "reward_metrics.jsonl")[0], metrics_of(run_dir / "reward_metrics.jsonl")[-1]
    assert last["loss"] < first["loss"]


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the chance a coin ranks k of n pairs right."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def test_the_policy_raises_the_reward_on_held_out_prompts(demo_run):
    run_dir, record, _ = demo_run
    held = record.extra["rlhf"]["held_out"]
    assert held["prompts"] > 20
    assert held["policy"] > held["reference"] + 0.1 and held["improved_share"] > 0.5
    rows = metrics(run_dir)
    assert all("reward" in r and "kl" in r for r in rows)
    # Step 1 samples from a policy identical to its reference (trl's frozen copy of the SFT
    # adapter): the KL is exactly 0, and training moves it away.
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6) and max(r["kl"] for r in rows) > 0.05


def test_record_artifacts_and_the_frozen_base(demo_run, bundle):
    run_dir, record, snap = demo_run
    info = record.extra["rlhf"]
    assert record.status == "completed" and info["algorithm"] == "rloo" and "no PPO trainer" in info["why"]
    assert set(info["stages"]) == {"sft", "reward_model", "policy"} and info["stages"]["sft"]["method"] == "lora"
    assert json.loads((run_dir / "sft" / "record.json").read_text())["status"] == "completed"
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(bundle[0]).resolve()) == record.base_model
    assert not (run_dir / "adapter" / "ref").exists(), "trl's frozen reference adapter leaked into the artifact"
    reward_config = json.loads((run_dir / "reward_model" / "config.json").read_text())
    assert reward_config["architectures"] == ["LlamaForSequenceClassification"] and len(reward_config["id2label"]) == 1
    assert {"adapter", "reward_model", "reward_metrics", "sft", "metrics"} <= set(record.artifacts)
    assert "frozen copy of the initial adapter" in record.extra["reference"]
    assert record.trainable_params == _advisor_trainable(bundle[0], record) > 0
    base = {k: v for k, v in snap.before.items() if "lora_" not in k}
    assert all((snap.after[k] == v).all() for k, v in base.items()), "RLHF+LoRA changed a base weight"
    trained = [k for k in snap.before if "lora_" in k and ".default." in k]
    assert any(not (snap.after[k] == snap.before[k]).all() for k in trained)


def test_eval_and_report_accept_the_run(demo_run, bundle):
    from evals.variants import resolve_runs
    from reports import figures_rlhf
    from reports.inputs import collect_inputs

    run_dir, _, _ = demo_run
    resolved = resolve_runs([run_dir])
    assert resolved.variants[1].kind == "adapter" and resolved.variants[1].method == "rlhf"
    loaded = collect_inputs([run_dir])
    assert [r.name for r in loaded.runs] == ["rlhf"]  # the nested sft/ run is not listed as another run
    assert figures_rlhf.rlhf_figure(loaded.runs) is not None


def test_a_full_sft_run_is_reused_and_a_lora_reward_model_shares_the_base(tiny_model_dir, tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", arithmetic_rows(12))
    run_plan(make_plan(tiny_model_dir, Method.FULL, sft, name="sft", max_steps=2), tmp_path)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(24))
    record = run_plan(rlhf_plan(tiny_model_dir, pairs, name="rlhf", init_from="sft", max_steps=2,
                                rlhf_generations=2, rlhf_response_tokens=6, rlhf_reward_lora=True), tmp_path)
    run_dir = tmp_path / "rlhf"
    assert record.artifacts["model"] == "model" and not (run_dir / "sft").exists()
    assert "sft" not in record.extra["rlhf"]["stages"] and record.init_from == "sft"
    assert "frozen copy of the starting model" in record.extra["reference"]
    reward = json.loads((run_dir / "reward_model" / "adapter_config.json").read_text())
    assert reward["base_model_name_or_path"] == str(Path(tiny_model_dir).resolve()) and "score" in reward["modules_to_save"]
    rm = record.extra["rlhf"]["stages"]["reward_model"]
    assert rm["adapter"] and rm["pairs"] == 2 and "held out" in rm["held_out"]  # 10% of 24, seeded
    assert len(metrics(run_dir)) == 2 and all("reward" in r for r in metrics(run_dir))


def test_bad_input_is_one_clear_error(tiny_model_dir, tmp_path):
    chats = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    with pytest.raises(InputError) as err:
        run_plan(rlhf_plan(tiny_model_dir, chats, name="wrong-data"), tmp_path)
    assert "chat.jsonl" in str(err.value)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(24))
    with pytest.raises(InputError, match="not a multiple of rlhf_generations = 3"):
        run_plan(rlhf_plan(tiny_model_dir, pairs, name="odd-batch", batch_size=4, rlhf_generations=3), tmp_path)
    assert json.loads((tmp_path / "odd-batch" / "record.json").read_text())["status"] == "failed"


def rlhf_plan(model_dir, data, **settings):
    """runner_kit's tiny plan (a few steps, every step logged) for the rlhf method."""
    plan = make_plan(model_dir, Method.DPO, data, **{"learning_rate": 1e-4, **settings})
    return dataclasses.replace(plan, method=Method.RLHF)


def metrics_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pair_accuracy(folder: Path, pairs: Path) -> float:
    """Held-out accuracy with plain transformers: prompt + response + EOS, as RewardTrainer trains."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = metrics_of(pairs)

    def score(text: str) -> float:
        with torch.no_grad():
            return model(**tok(text + tok.eos_token, return_tensors="pt")).logits[0, 0].item()

    wins = sum(score(r["prompt"] + r["chosen"]) > score(r["prompt"] + r["rejected"]) for r in rows)
    return wins / len(rows)


def _advisor_trainable(model: Path, record) -> int:
    """The advisor's trainable count for this rlhf run: the policy adapter (RLOO, no value model)."""
    from advisor.estimate import estimate
    from advisor.hardware import resolve_hardware
    from advisor.models import resolve_model
    from tunewise.settings import TrainSettings

    settings = TrainSettings(**record.config["settings"])
    return estimate(resolve_model(str(model)), Method.RLHF, resolve_hardware("cpu"), settings).trainable_params


@pytest.mark.parametrize("field,value", [("rlhf_beta", 0.2), ("rlhf_generations", 8), ("rlhf_response_tokens", 64),
                                         ("rlhf_reward_lr", 3e-5)])
def test_rlhf_settings_reach_the_trl_configs(field, value, tmp_path):
    """No dead config: each rlhf_* setting changes RLOOConfig or RewardConfig (no model is built)."""
    from runners._common import RunContext, RunOptions, Runtime
    from runners.translate import to_reward, to_rloo
    from tunewise.plan import Plan
    from tunewise.records import RunRecord
    from tunewise.settings import TrainSettings

    def translated(settings):
        ctx = RunContext(Plan(method=Method.RLHF, model="m", settings=settings), settings, tmp_path,
                         Runtime("cpu", "fp32", "test"), RunOptions(), RunRecord(name="t", method="rlhf", base_model="m"))
        rloo = to_rloo(ctx, adapter=True, new_adapter=True).args.to_dict()
        reward = to_reward(ctx, adapter=True, output_dir=str(tmp_path / "rm")).args.to_dict()
        return rloo, reward

    base = TrainSettings(batch_size=8, learning_rate=1e-5, rlhf_reward_lr=1e-4)
    assert translated(base.replace(**{field: value})) != translated(base)
