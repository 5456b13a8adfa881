"""The method policy, the settings rules and the fit fixes.

    .venv/bin/python -m pytest tests/unit/test_policy.py

Two layers: rule behaviour on a simple fake estimator (policy_fakes.py), and "known facts"
through `advise()` with the real estimator and catalogs (skipped until they exist).
"""

import pytest
from policy_fakes import situation

from advisor import hyperparams, policy
from advisor.advise import decide
from advisor.context import normalise_goal
from advisor.data_profile import Verdict
from advisor.fixes import cheapest_fixes
from tunewise.errors import InputError
from tunewise.methods import Method


def test_fifty_examples_prompt():
    s = situation(examples=50, format="prompt_completion", lengths_p95=200)
    choice = decide(s)
    assert choice.method is Method.PROMPT and choice.rule == "few-examples"
    assert "50 examples" in choice.reasons[0]


def test_mid_size_data_lora_when_it_fits_with_the_comparison_explained():
    s = situation(examples=500, format="messages", lengths_p95=700, memory_gib=80)
    choice = decide(s)
    assert choice.method is Method.LORA and choice.rule == "lora-fits"
    assert "QLoRA would run micro-batch" in choice.reasons[0]


def test_qlora_when_lora_does_not_fit():
    s = situation(params=13e9, examples=500, format="messages", lengths_p95=700, memory_gib=24)
    choice = decide(s)
    assert not s.candidates[Method.LORA].fits and s.candidates[Method.QLORA].fits
    assert choice.method is Method.QLORA and choice.rule == "qlora-when-tight"
    assert "over the 24 GiB available" in choice.reasons[0]


def test_qlora_when_lora_is_over_budget():
    s = situation(params=7e9, examples=5_000, format="messages", lengths_p95=700, memory_gib=80,
                  tokens=200_000_000)
    decide(s)
    lora_cost = s.candidates[Method.LORA].cost_usd
    s.budget_usd = lora_cost * 0.99
    s.estimate = _qlora_cheaper(s.estimate)
    choice = decide(s)
    assert choice.method is Method.QLORA
    assert "budget" in choice.reasons[0]


def _qlora_cheaper(inner):
    def estimate(method, st, gpus, spec):
        est = inner(method, st, gpus, spec)
        if method is Method.QLORA:
            est["cost_usd"] = est["cost_usd"] * 0.5
        return est
    return estimate


def test_large_data_with_memory_and_budget_full():
    s = situation(params=8e9, examples=50_000, format="messages", lengths_p95=900, memory_gib=80, gpus=8,
                  budget_usd=10_000)
    choice = decide(s)
    assert choice.method is Method.FULL and choice.rule == "large-data-full"
    zero = next(d for d in s.candidates[Method.FULL].derivations if d.field == "zero_stage")
    assert zero.rule == "shard-when-needed" and zero.value in (2, 3)


def test_large_data_style_goal_stays_on_adapters():
    s = situation(params=8e9, examples=50_000, format="messages", lengths_p95=900, memory_gib=80, gpus=8,
                  goal="style")
    choice = decide(s)
    assert choice.method is Method.LORA and "style" in choice.reasons[0]
    rank = next(d for d in s.candidates[Method.LORA].derivations if d.field == "lora_rank")
    assert (rank.value, rank.rule) == (8, "style-low-rank")


def test_large_data_when_full_does_not_fit_picks_lora_and_says_why():
    s = situation(params=8e9, examples=50_000, format="messages", lengths_p95=900, memory_gib=24)
    choice = decide(s)
    assert choice.method is Method.LORA
    assert "full fine-tuning would suit this much data but full needs" in choice.reasons[0]


def test_preference_pairs_dpo_with_rlhf_trade_offs_stated():
    s = situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9)
    choice = decide(s)
    assert choice.method is Method.DPO and choice.rule == "preference-pairs"
    assert "RLHF only when asked" in choice.reasons[0] and "reward model" in choice.reasons[0]


def test_rlhf_only_when_asked():
    s = situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9,
                  forced=Method.RLHF)
    choice = decide(s)
    assert choice.method is Method.RLHF and choice.rule == "asked-rlhf"
    for word in ("stages", "slower", "memory", "stable"):
        assert word in choice.reasons[0]


def test_many_tasks_lora_adapters():
    s = situation(examples=20_000, format="messages", lengths_p95=500, memory_gib=80, gpus=8, tasks=10)
    choice = decide(s)
    assert choice.method is Method.LORA and choice.rule == "many-tasks"
    assert "10 tasks" in choice.reasons[0]


def test_forced_full_that_does_not_fit_gets_re_estimated_fixes():
    s = situation(params=7e9, examples=500, format="messages", lengths_p95=700, memory_gib=24,
                  forced=Method.FULL)
    s.smaller_models = [("fake-1b", type("Spec", (), {"params": 1_000_000_000})())]
    choice = decide(s)
    assert choice.method is Method.FULL and not s.candidates[Method.FULL].fits
    fixes = cheapest_fixes(s, s.candidates[Method.FULL])
    assert fixes, "a full FT that does not fit must come with changes that make it fit"
    changes = [f["change"] for f in fixes]
    assert any("qlora" in c for c in changes) and any("ZeRO-3" in c for c in changes)
    assert any("smaller model" in c for c in changes)
    for fix in fixes:  # each was re-estimated with the fake and fits its own memory limit
        assert fix["fits"] and fix["total_gib"] <= 24
    # ordered cheapest first: method switches before more hardware before another model
    assert changes.index(next(c for c in changes if "qlora" in c)) < changes.index(
        next(c for c in changes if "ZeRO-3" in c)) < changes.index(next(c for c in changes if "smaller" in c))


def test_fixes_stack_when_no_single_change_fits():
    s = situation(params=7e9, examples=500, format="messages", lengths_p95=2000, memory_gib=14.5,
                  device_kind="apple", forced=Method.LORA, overrides={"gradient_checkpointing": False,
                                                                       "batch_size": 8})
    decide(s)
    cand = s.candidates[Method.LORA]
    assert not cand.fits and not s.candidates[Method.QLORA].supported
    fixes = cheapest_fixes(s, cand)
    assert len(fixes) == 1 and fixes[0]["fits"]
    assert " + " in fixes[0]["change"]  # a stack of changes
    assert fixes[0]["settings"]["gradient_checkpointing"] is True


def test_full_fine_tuning_warns_about_forgetting_unless_preserving():
    s = situation(params=1e9, examples=50_000, format="text", lengths_p95=500, memory_gib=80)
    choice = decide(s)
    assert choice.method is Method.FULL
    assert any("forgetting" in n and "--preserve-general" in n for n in choice.notes)
    s2 = situation(params=1e9, examples=50_000, format="text", lengths_p95=500, memory_gib=80,
                   preserve_general=True)
    choice2 = decide(s2)
    values = {d.field: (d.value, d.rule) for d in s2.candidates[Method.FULL].derivations}
    assert values["replay"] == (0.05, "preserve-general")
    assert values["learning_rate"] == (5e-6, "full-preserve")
    assert not any("forgetting:" in n for n in choice2.notes)


def test_every_derived_value_names_its_rule_and_override_wins():
    s = situation(examples=500, format="messages", lengths_p95=700, memory_gib=80,
                  overrides={"lora_rank": 32, "seq_len": 1024})
    decide(s)
    cand = s.candidates[Method.LORA]
    fields = {d.field: d for d in cand.derivations}
    for name in ("seq_len", "precision", "optimizer", "lora_rank", "lora_alpha", "lora_targets",
                 "learning_rate", "epochs", "replay", "zero_stage", "gradient_checkpointing",
                 "batch_size", "grad_accum"):
        assert name in fields and fields[name].reason, name
        assert getattr(cand.settings, name) == fields[name].value
    assert fields["lora_rank"].rule == "override" and cand.settings.lora_rank == 32
    assert fields["lora_alpha"].value == 64  # derived from the overridden rank
    assert fields["seq_len"].rule == "override"


def test_seq_len_from_p95_rounded_up_and_capped_by_the_model():
    s = situation(examples=500, format="messages", lengths_p95=700, lengths_max=3000, memory_gib=80)
    decide(s)
    assert s.candidates[Method.LORA].settings.seq_len == 768
    s2 = situation(examples=500, format="messages", lengths_p95=9000, memory_gib=80, max_position=4096)
    decide(s2)
    assert s2.candidates[Method.LORA].settings.seq_len == 4096


def test_batch_is_the_largest_that_fits_and_accumulation_keeps_the_global_batch():
    s = situation(examples=500, format="messages", lengths_p95=2000, memory_gib=24)
    decide(s)
    st = s.candidates[Method.LORA].settings
    bigger = st.replace(batch_size=st.batch_size * 2)
    assert s.estimate(Method.LORA, st, 1, None)["fits"]
    assert st.batch_size == 16 or not s.estimate(Method.LORA, bigger, 1, None)["fits"]
    assert st.batch_size * st.grad_accum >= hyperparams.GLOBAL_BATCH


def test_qlora_uses_paged_optimizer_and_cpu_uses_fp32():
    s = situation(examples=500, format="messages", lengths_p95=700, memory_gib=80, device_kind="cpu", bf16=False)
    decide(s)
    assert s.candidates[Method.QLORA].settings.optimizer == "paged-adamw-8bit"
    assert s.candidates[Method.LORA].settings.precision == "fp32"


def test_few_shot_count_fits_the_context():
    s = situation(examples=50, format="prompt_completion", lengths_p95=1500, max_position=4096)
    decide(s)
    st = s.candidates[Method.PROMPT].settings
    assert st.num_fewshot == 1 and st.seq_len == 3000


def test_data_verdict_problems_become_notes():
    s = situation(examples=500, format="messages", lengths_p95=700, memory_gib=80,
                  data_verdicts={Method.LORA: Verdict("marginal", "just enough")})
    choice = decide(s)
    assert any("marginal -- just enough" in n for n in choice.notes)


def test_goal_names_and_aliases():
    assert normalise_goal("Format") == "style" and normalise_goal("safety") == "preference"
    with pytest.raises(InputError, match="unknown goal"):
        normalise_goal("speed")


@pytest.mark.parametrize("rule", [r.name for r in policy.RULES])
def test_every_method_rule_can_fire(rule):
    """Each rule in the ordered list is reachable: some input makes it the first to hold."""
    inputs = {
        "asked-rlhf": dict(forced=Method.RLHF, examples=2_000, format="preference"),
        "asked": dict(forced=Method.QLORA, examples=500, format="messages"),
        "asked-online-rl": dict(online_rl=True, examples=2_000, format="preference"),
        "preference-pairs": dict(examples=2_000, format="preference"),
        "few-examples": dict(examples=20, format="messages"),
        "few-examples-prompt-too-big": dict(params=30e9, examples=20, format="messages", memory_gib=24),
        "many-tasks": dict(examples=500, format="messages", tasks=5),
        "large-data-full": dict(params=1e9, examples=20_000, format="messages", memory_gib=80),
        "lora-fits": dict(examples=500, format="messages", memory_gib=80),
        "qlora-when-tight": dict(params=13e9, examples=500, format="messages", memory_gib=24),
        "lora-tight": dict(params=7e9, examples=500, format="messages", memory_gib=15.5, device_kind="apple"),
        "nothing-fits": dict(params=70e9, examples=500, format="messages", memory_gib=16),
    }
    kw = {"lengths_p95": 600, **inputs[rule]}
    choice = decide(situation(**kw))
    assert choice.rule == rule


def test_days_of_training_are_not_a_plan():
    kw = dict(params=7e9, examples=5_000, format="messages", lengths_p95=700, memory_gib=80, tokens=5_000_000_000)
    s = situation(**kw)
    choice = decide(s)
    assert choice.rule == "nothing-fits" and "over the 72 h limit" in choice.reasons[0]
    assert s.candidates[Method.QLORA].verdict == "too-slow"
    relaxed = situation(max_hours=10_000, **kw)
    assert decide(relaxed).method is Method.LORA


def test_dpo_trains_an_adapter_unless_told_otherwise():
    s = situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9)
    decide(s)
    fields = {d.field: d for d in s.candidates[Method.DPO].derivations}
    assert fields["dpo_lora"].value is True and fields["lora_rank"].value == 16
    assert fields["learning_rate"].value == 5e-6
    s2 = situation(examples=3_000, format="preference", lengths_p95=500, memory_gib=80, params=1e9,
                   overrides={"dpo_lora": False})
    decide(s2)
    fields2 = {d.field: d for d in s2.candidates[Method.DPO].derivations}
    assert "lora_rank" not in fields2 and fields2["learning_rate"].value == 5e-7


def test_lora_that_fits_only_tightly_yields_to_qlora():
    # 7B LoRA on 15.5 GiB: fits above the 90% headroom, so QLoRA (which fits roomily) wins
    s = situation(params=7e9, examples=500, format="messages", lengths_p95=700, memory_gib=15.5)
    choice = decide(s)
    lora = s.candidates[Method.LORA]
    assert lora.fits and lora.total_gib > 0.9 * 15.5
    assert choice.method is Method.QLORA and "fits only tightly" in choice.reasons[0]


@pytest.mark.parametrize("model, gpu, gpus, examples", [
    ("meta-llama/Llama-3.1-8B", "a100-80gb", 1, 20_000),
    ("Qwen/Qwen2.5-7B", "h100-sxm", 1, 20_000),
    ("meta-llama/Llama-3.1-8B", "a100-40gb", 2, 1_000),
    ("meta-llama/Llama-3.1-70B", "h100-sxm", 8, 20_000),
])
def test_a_method_that_does_not_fit_has_no_smaller_micro_batch_that_would(model, gpu, gpus, examples):
    # The batch rule checks memory at the accumulation the plan then uses: accumulating keeps
    # the gradients alive through the next forward, so a batch that fits at grad_accum 1 can
    # fail in the plan (8B full FT on one 80 GB GPU was refused this way at batch 4 x 4).
    from advisor.advise import AdviceRequest, advise
    from advisor.estimate import estimate
    from advisor.hardware import resolve_hardware
    from advisor.models import resolve_model

    spec, hardware = resolve_model(model), resolve_hardware(gpu)
    advice = advise(AdviceRequest(model=model, gpu=gpu, gpus=gpus, examples=examples, tokens_per_example=500,
                                  history=False))
    for method, cand in advice.candidates.items():
        st = cand.settings
        assert st.batch_size * st.grad_accum * gpus <= max(hyperparams.GLOBAL_BATCH, gpus), method
        if cand.fits or not method.trains:
            continue
        for batch in (b for b in hyperparams.BATCH_CHOICES if b < st.batch_size):
            smaller = st.replace(batch_size=batch, grad_accum=max(1, hyperparams.GLOBAL_BATCH // (batch * gpus)))
            assert not estimate(spec, method, hardware, smaller, gpus=gpus).fits, (method, batch)
    if (model, gpu) == ("meta-llama/Llama-3.1-8B", "a100-80gb"):
        assert advice.method is Method.FULL and advice.chosen.fits


def test_the_pick_fits_in_memory_whenever_some_method_does():
    """Few examples but the model is too big to prompt: an adapter that fits, not prompting.
    Nothing ok (over budget / time): the method the data asks for if it fits in memory, else
    one that does -- never a method that does not fit while another one fits."""
    few = situation(params=30e9, examples=20, format="messages", lengths_p95=600, memory_gib=24)
    assert decide(few).method is Method.QLORA and few.candidates[Method.QLORA].fits
    broke = situation(params=7e9, examples=50_000, format="messages", lengths_p95=600, memory_gib=24,
                      budget_usd=0.01)
    choice = decide(broke)
    assert choice.rule == "nothing-fits" and broke.candidates[choice.method].fits
    assert not broke.candidates[Method.FULL].fits and choice.method is not Method.FULL
