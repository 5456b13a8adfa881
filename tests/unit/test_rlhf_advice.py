"""RLHF in the advisor: the estimator's models, KV cache and stage times, and the policy's
RLHF-vs-DPO explanation (DPO unless an explicit reward model or online RL is asked for).

    .venv/bin/python -m pytest tests/unit/test_rlhf_advice.py
"""

import json

import pytest
from click.testing import CliRunner
from policy_fakes import situation

from advisor.advise import decide
from advisor.estimate import estimate
from advisor.hardware import resolve_hardware
from advisor.memory import MemoryKnobs
from advisor.models import resolve_model
from tunewise.cli import cli
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

GIB = 2**30
QWEN7 = "Qwen/Qwen2.5-7B"


def est(method, knobs=None, gpu="a100-80gb", **settings):
    base = {"batch_size": 4, "grad_accum": 4, "seq_len": 1024, "gradient_checkpointing": True}
    return estimate(resolve_model(QWEN7), Method(method), resolve_hardware(gpu), TrainSettings(**{**base, **settings}),
                    examples=5_000, avg_tokens_per_example=400, knobs=knobs)


def frozen_copy_gib(bytes_per_param=2.0):
    return resolve_model(QWEN7).params * bytes_per_param / GIB


# ------------------------------------------------------------------ memory: which models are held


def test_rloo_with_adapters_holds_two_bases_policy_and_reward_model():
    rl, lora = est("rlhf"), est("lora")
    # policy base (the reference is the same base, adapter off) + the reward model's copy
    assert rl.memory.weights == pytest.approx(lora.memory.weights + frozen_copy_gib(), rel=1e-6)
    assert rl.trainable_params == lora.trainable_params  # the policy adapter, as the run records it


def test_full_rloo_adds_a_frozen_reference_and_reward_model_in_the_compute_precision():
    rl, full = est("rlhf", MemoryKnobs(preference_adapter=False)), est("full")
    assert rl.memory.weights == pytest.approx(full.memory.weights + 2 * frozen_copy_gib(), rel=1e-6)
    fp32 = est("rlhf", MemoryKnobs(preference_adapter=False), precision="fp32")
    full32 = est("full", precision="fp32")
    assert fp32.memory.weights == pytest.approx(full32.memory.weights + 2 * frozen_copy_gib(4.0), rel=1e-6)


def test_ppo_adds_a_trained_value_model():
    rloo, ppo = est("rlhf"), est("rlhf", MemoryKnobs(rlhf_algorithm="ppo"))
    assert ppo.trainable_params == 2 * rloo.trainable_params
    assert ppo.memory.optimizer == pytest.approx(2 * rloo.memory.optimizer, rel=1e-6)
    assert ppo.memory.total > rloo.memory.total
    full_rloo = est("rlhf", MemoryKnobs(preference_adapter=False))
    full_ppo = est("rlhf", MemoryKnobs(preference_adapter=False, rlhf_algorithm="ppo"))
    assert full_ppo.memory.weights == pytest.approx(full_rloo.memory.weights + est("full").memory.weights, rel=1e-6)


def test_rlhf_needs_more_memory_than_dpo():
    assert est("rlhf").memory.total > est("dpo").memory.total
    assert est("rlhf", MemoryKnobs(preference_adapter=False)).memory.total > \
        est("dpo", MemoryKnobs(preference_adapter=False)).memory.total


def test_the_generation_kv_cache_grows_with_responses_and_the_generation_batch():
    # Long responses and a large generation batch: the KV cache, not training activations, is the peak.
    short = est("rlhf", batch_size=1, grad_accum=16, seq_len=512, rlhf_response_tokens=128)
    long = est("rlhf", batch_size=1, grad_accum=16, seq_len=512, rlhf_response_tokens=8192)
    spec = resolve_model(QWEN7)
    kv = 2 * spec.n_layers * spec.n_kv_heads * spec.head_dim * 2 * 16 * (512 + 8192) / GIB
    assert long.memory.activations == pytest.approx(kv, rel=1e-6)
    assert long.memory.activations > short.memory.activations
    ppo = est("rlhf", MemoryKnobs(rlhf_algorithm="ppo"), batch_size=1, grad_accum=16, seq_len=512,
              rlhf_response_tokens=8192)
    assert ppo.memory.activations < long.memory.activations  # PPO samples one micro-batch at a time


# ------------------------------------------------------------------ time: stages and generation


def test_rlhf_time_is_its_stages_plus_generation_and_dwarfs_dpo():
    rl, dpo = est("rlhf"), est("dpo")
    stages = _stages(rl)
    assert set(stages) == {"sft", "reward model", "policy", "generation"}
    assert sum(stages.values()) == pytest.approx(rl.time_hours, rel=1e-2)
    assert stages["generation"] > 0 and rl.time_hours > 3 * dpo.time_hours
    # k samples per prompt: the policy stage processes k x the tokens of the SFT stage
    k4, k8 = _stages(est("rlhf", rlhf_generations=4)), _stages(est("rlhf", rlhf_generations=8))
    assert k8["policy"] == pytest.approx(2 * k4["policy"], rel=1e-2)
    assert k8["generation"] == pytest.approx(2 * k4["generation"], rel=1e-2)


def test_reusing_an_sft_run_drops_its_stage_and_longer_responses_take_longer():
    with_sft, without = est("rlhf"), est("rlhf", MemoryKnobs(rlhf_sft_stage=False))
    assert with_sft.time_hours - without.time_hours == pytest.approx(_stages(with_sft)["sft"], rel=2e-2)
    longer = est("rlhf", rlhf_response_tokens=1024)
    assert _stages(longer)["generation"] == pytest.approx(4 * _stages(with_sft)["generation"], rel=1e-2)


def test_assumptions_say_what_runs_and_why_not_ppo():
    text = " ".join(est("rlhf").assumptions)
    assert "RLOO" in text and "trl 1.16 has no PPO trainer" in text and "no value model" in text
    assert "value" in " ".join(est("rlhf", MemoryKnobs(rlhf_algorithm="ppo")).assumptions)


def _stages(estimate_):
    line = next(a for a in estimate_.assumptions if a.startswith("RLHF time = "))
    body = line.removeprefix("RLHF time = ").split(";")[0]
    return {part.rsplit(" ", 2)[0].strip(): float(part.rsplit(" ", 2)[1]) for part in body.split(", ")}


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("field,value", [("rlhf_generations", 1), ("rlhf_beta", -0.1), ("rlhf_response_tokens", 0),
                                         ("rlhf_reward_lr", 1.5), ("rlhf_sft_lr", 0.0)])
def test_rlhf_settings_are_validated(field, value):
    with pytest.raises(InputError) as err:
        TrainSettings(**{field: value})
    assert err.value.field == field


# ------------------------------------------------------------------ policy: DPO unless asked


def test_preference_pairs_get_dpo_with_the_rlhf_numbers():
    choice = decide(situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9))
    assert choice.method is Method.DPO
    reason = choice.reasons[0]
    assert "RLHF only when asked" in reason and "--online-rl" in reason
    assert "Here RLHF vs DPO:" in reason and "GiB per device" in reason


@pytest.mark.parametrize("ask", [dict(online_rl=True), dict(forced=Method.RLHF)])
def test_asking_for_a_reward_model_or_online_rl_gets_rlhf_with_its_trade_offs(ask):
    s = situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9, **ask)
    choice = decide(s)
    assert choice.method is Method.RLHF
    reason = choice.reasons[0]
    for word in ("three stages", "memory", "slower", "less stable", "reward hacking", "value model"):
        assert word in reason
    rl, dpo = s.candidates[Method.RLHF], s.candidates[Method.DPO]
    assert f"{rl.total_gib:.1f} vs {dpo.total_gib:.1f} GiB" in reason


def test_online_rl_without_preference_pairs_is_not_rlhf_and_says_why():
    choice = decide(situation(examples=3_000, format="messages", lengths_p95=500, memory_gib=80, params=1e9,
                              online_rl=True))
    assert choice.method is not Method.RLHF
    assert any("--online-rl needs prompt/chosen/rejected pairs" in n for n in choice.notes)


def test_advise_online_rl_flag_end_to_end(tmp_path):
    rows = [{"prompt": f"Q{i}: where is my order?", "chosen": f"It ships on day {i % 5}.",
             "rejected": "Figure it out."} for i in range(300)]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    plain = runner.invoke(cli, ["advise", "--model", "Qwen/Qwen2.5-0.5B", "--gpu", "a100-80gb", "--data", str(data),
                                "--json", "--no-history"], catch_exceptions=False)
    asked = runner.invoke(cli, ["advise", "--model", "Qwen/Qwen2.5-0.5B", "--gpu", "a100-80gb", "--data", str(data),
                                "--json", "--no-history", "--online-rl"], catch_exceptions=False)
    assert plain.exit_code == 0 and asked.exit_code == 0, plain.output + asked.output
    assert json.loads(plain.stdout)["recommendation"]["method"] == "dpo"
    rec = json.loads(asked.stdout)["recommendation"]
    assert rec["method"] == "rlhf" and rec["rule"] == "asked-online-rl"
