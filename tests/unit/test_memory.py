"""Memory estimates agree with known facts, published deltas and their own arithmetic.

    .venv/bin/python -m pytest tests/unit/test_memory.py
"""

import sys
from pathlib import Path

import pytest

from advisor.estimate import estimate
from advisor.hardware import resolve_hardware
from advisor.memory import MemoryKnobs
from advisor.models import resolve_model
from tunewise.methods import Method
from tunewise.settings import TrainSettings

LLAMA7 = "meta-llama/Llama-2-7b-hf"
GIB = 2**30


def est(model, method, gpu="rtx-4090", mem=None, gpus=1, knobs=None, **settings):
    base = {"batch_size": 1, "seq_len": 2048, "gradient_checkpointing": True}
    return estimate(resolve_model(model), Method(method), resolve_hardware(gpu, mem),
                    TrainSettings(**{**base, **settings}), gpus=gpus, tokens=1_000_000, knobs=knobs)


# ------------------------------------------------------------------ known facts


@pytest.mark.parametrize("model", ["huggyllama/llama-7b", LLAMA7, "meta-llama/Llama-2-13b-hf"])
@pytest.mark.parametrize("seq_len", [512, 2048])
def test_24gb_card_fits_qlora_of_7b_to_13b(model, seq_len):
    assert est(model, "qlora", seq_len=seq_len).fits


@pytest.mark.parametrize("seq_len", [512, 1024, 2048])
def test_24gb_card_fits_lora_of_7b_with_checkpointing(seq_len):
    assert est(LLAMA7, "lora", seq_len=seq_len).fits


@pytest.mark.parametrize("optimizer", ["adamw", "adamw-8bit"])
def test_24gb_card_does_not_fit_full_fine_tuning_of_7b(optimizer):
    assert not est(LLAMA7, "full", seq_len=512, optimizer=optimizer).fits


def test_qlora_of_65b_fits_in_48gb_with_a_paged_optimizer():
    result = est("huggyllama/llama-65b", "qlora", gpu="rtx-a6000", seq_len=512, optimizer="paged-adamw-8bit")
    assert result.fits and result.memory.total < 48


def test_a_16gb_laptop_without_gpu_cannot_fine_tune_7b():
    assert not est(LLAMA7, "full", gpu="cpu", mem=16, seq_len=512).fits
    assert not est(LLAMA7, "lora", gpu="cpu", mem=16, seq_len=512).fits
    qlora = est(LLAMA7, "qlora", gpu="cpu", mem=16, seq_len=512)
    assert qlora.time_hours > 24  # a million tokens would take days even if the 4-bit base fits


# ------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("method", list(Method))
def test_parts_sum_to_total_for_every_method(method):
    mem = est("meta-llama/Llama-3.1-8B", method, gpu="a100-80gb").to_dict()["memory_gib"]
    parts = sum(v for k, v in mem.items() if k != "total")
    assert mem["total"] == pytest.approx(parts, abs=1e-9)


def test_bytes_per_parameter_follow_the_precision():
    """bf16 = pure bf16 (2 + 2 + 4 B/param), amp/fp16 = fp32 masters (4 + 4 + 8 B/param)."""
    spec = resolve_model(LLAMA7)
    bf16 = est(LLAMA7, "full", gpu="h200", seq_len=128, gradient_checkpointing=True)
    assert bf16.memory.weights * GIB == pytest.approx(2 * spec.params)
    assert bf16.memory.optimizer * GIB == pytest.approx(4 * spec.params)  # two bf16 Adam states
    for precision in ("amp", "fp16", "fp32"):
        mixed = est(LLAMA7, "full", gpu="h200", seq_len=128, precision=precision)
        assert mixed.memory.weights * GIB == pytest.approx(4 * spec.params)  # fp32 masters, no 16-bit copy kept
        assert mixed.memory.gradients * GIB == pytest.approx(4 * spec.params)  # peak: end of backward
        assert mixed.memory.optimizer * GIB == pytest.approx(8 * spec.params)
    eight = est(LLAMA7, "full", gpu="h200", seq_len=128, optimizer="adamw-8bit")
    assert eight.memory.optimizer * GIB == pytest.approx(2 * spec.params)
    assert est(LLAMA7, "full", gpu="h200", seq_len=128, optimizer="sgd").memory.optimizer == 0


def test_amp_holds_autocast_copies_of_the_weights_while_the_loss_is_computed():
    # With SGD and no checkpointing the end of the forward is the peak: the fp32 masters plus
    # the 16-bit copies autocast caches of every layer weight (2 B/param) plus activations.
    spec = resolve_model(LLAMA7)
    amp = est(LLAMA7, "full", gpu="h200", seq_len=2048, precision="amp", optimizer="sgd",
              gradient_checkpointing=False).memory
    pure = est(LLAMA7, "full", gpu="h200", seq_len=2048, precision="bf16", optimizer="sgd",
               gradient_checkpointing=False).memory
    layer_params = spec.params - spec.embedding_params - spec.lm_head_params
    assert amp.activations - pure.activations > 2 * layer_params / GIB


def test_adapter_dtype_follows_the_precision_and_trl():
    lora = resolve_model(LLAMA7)
    pure = est(LLAMA7, "lora", gpu="h200").memory
    amp = est(LLAMA7, "lora", gpu="h200", precision="amp").memory
    assert amp.adapter == pytest.approx(2 * pure.adapter)  # PEFT fp32 vs pure bf16
    assert amp.weights == pytest.approx(pure.weights) == pytest.approx(2 * lora.params / GIB)  # frozen: no masters
    qlora_pure = est(LLAMA7, "qlora", gpu="h200").memory
    qlora_amp = est(LLAMA7, "qlora", gpu="h200", precision="amp").memory
    assert qlora_amp.adapter == pytest.approx(qlora_pure.adapter) == pytest.approx(pure.adapter)  # trl: bf16


def test_trl_fused_head_never_holds_full_logits():
    # Llama-3.1-8B, vocab 128k, 8 x 4096 tokens: full fp32 logits would be 14 B x 32768 x 128256 = 55 GiB.
    fused = est("meta-llama/Llama-3.1-8B", "lora", gpu="h200", batch_size=8, seq_len=4096).memory
    hf = est("meta-llama/Llama-3.1-8B", "lora", gpu="h200", batch_size=8, seq_len=4096,
             knobs=MemoryKnobs(loss="hf")).memory
    assert hf.activations - fused.activations > 40
    assert fused.activations < 20


def test_double_quantisation_saves_about_0_37_bits_per_parameter():
    # litgpt: Llama-2-7B QLoRA 14.14 -> 13.84 GB with double quantisation (0.30 GB).
    dq = est(LLAMA7, "qlora").memory.weights
    plain = est(LLAMA7, "qlora", knobs=MemoryKnobs(double_quant=False)).memory.weights
    assert 0.25 < (plain - dq) * GIB / 1e9 < 0.35


def test_lora_rank_barely_moves_memory_but_activations_do():
    # torchtune: Llama-2-7B r8 -> r64 on q,v: 15.57 -> 15.86 GB
    r8 = est(LLAMA7, "lora", lora_rank=8, lora_targets="q_proj,v_proj").memory.total
    r64 = est(LLAMA7, "lora", lora_rank=64, lora_targets="q_proj,v_proj").memory.total
    assert 0 < r64 - r8 < 0.6
    bs1 = est(LLAMA7, "lora").memory.activations
    bs4 = est(LLAMA7, "lora", batch_size=4).memory.activations
    assert bs4 == pytest.approx(4 * bs1, rel=0.05)


def test_checkpointing_cuts_activations():
    on = est(LLAMA7, "lora", gpu="a100-80gb", batch_size=4).memory.activations
    off = est(LLAMA7, "lora", gpu="a100-80gb", batch_size=4, gradient_checkpointing=False).memory.activations
    assert off > 3 * on
    eager = est(LLAMA7, "lora", gpu="a100-80gb", batch_size=4, gradient_checkpointing=False,
                knobs=MemoryKnobs(attention="eager")).memory.activations
    assert eager > off  # s^2 attention scores


def test_zero_stages_shard_what_they_should():
    one = est(LLAMA7, "full", gpu="a100-80gb").memory
    z1 = est(LLAMA7, "full", gpu="a100-80gb", gpus=8, zero_stage=1).memory
    z3 = est(LLAMA7, "full", gpu="a100-80gb", gpus=8, zero_stage=3).memory
    assert z1.optimizer == pytest.approx(one.optimizer / 8)
    assert z1.weights == pytest.approx(one.weights)
    assert z3.weights < one.weights / 4 and z3.total < z1.total < one.total


def test_dpo_doubles_sequences_and_full_dpo_adds_a_reference_copy():
    # trl's DPOTrainer disables dropout, so DPO on b pairs holds what LoRA without dropout holds on 2b rows
    lora = est(LLAMA7, "lora", gpu="a100-80gb", batch_size=4, lora_dropout=0.0).memory
    dpo = est(LLAMA7, "dpo", gpu="a100-80gb", batch_size=2).memory
    assert dpo.activations == pytest.approx(lora.activations, rel=0.01)
    assert dpo.activations > 1.8 * est(LLAMA7, "lora", gpu="a100-80gb", batch_size=2, lora_dropout=0.0).memory.activations
    assert dpo.weights == pytest.approx(lora.weights)  # reference = adapter disabled
    full_dpo = est(LLAMA7, "dpo", gpu="a100-80gb", batch_size=2, knobs=MemoryKnobs(preference_adapter=False)).memory
    full = est(LLAMA7, "full", gpu="a100-80gb", batch_size=2).memory
    assert full_dpo.weights == pytest.approx(2 * full.weights)


def test_rlhf_holds_more_than_dpo():
    assert est(LLAMA7, "rlhf", gpu="a100-80gb").memory.total > est(LLAMA7, "dpo", gpu="a100-80gb").memory.total


def test_paged_optimizer_state_can_page_out():
    result = est(LLAMA7, "full", gpu="a100-80gb", optimizer="paged-adamw-8bit")
    assert result.memory.pageable == pytest.approx(result.memory.optimizer)


# ------------------------------------------------------------------ vs published measurements


def test_published_peaks_median_error_stays_small():
    """Regression guard on benchmarks/estimate_accuracy.py table 1 (full table there)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.accuracy_published import scenarios

    rows = scenarios()
    errors = sorted(abs(r.error) for r in rows if r.error is not None)
    assert len(errors) >= 40
    assert errors[len(errors) // 2] <= 0.10
    verdicts = [r for r in rows if r.fits is not None]
    assert all(r.fits == (not r.oom) for r in verdicts)


def test_fp32_logit_losses_hold_what_their_recipes_keep():
    """torchtune before 2024-07-28 / transformers < 4.46 keep fp32 logits through backward
    (16 B per token x vocab), torchtune since frees them first (12 B), transformers today 14 B."""
    name = "meta-llama/Llama-2-7b-hf"
    spec, tokens = resolve_model(name), 2 * 1024

    def loss_gib(loss):
        return est(name, "lora", gpu="a100-80gb", batch_size=2, seq_len=1024, gradient_checkpointing=True,
                   knobs=MemoryKnobs(loss=loss)).memory.activations

    kept, freed, hf = loss_gib("fp32-logits"), loss_gib("fp32-logits-freed"), loss_gib("hf")
    per_byte = spec.vocab * tokens / 2**30
    assert kept - hf == pytest.approx(2 * per_byte, rel=1e-3)
    assert hf - freed == pytest.approx(2 * per_byte, rel=1e-3)


def test_on_a_gpu_lora_trains_faster_than_full_fine_tuning_by_torchtunes_measured_ratio():
    """torchtune, Llama-3.2-3B, one A100, checkpointing on: LoRA 8210 tok/s, full 7210
    (memory_formulas.md §8): LoRA skips the weight-gradient GEMMs but runs at a lower FLOP rate."""
    def hours(method):
        return est("meta-llama/Llama-3.2-3B", method, gpu="a100-80gb", batch_size=4, seq_len=2048).time_hours

    assert hours("full") / hours("lora") == pytest.approx(8210 / 7210, rel=0.05)
    assert hours("qlora") / hours("lora") == pytest.approx(1.56, rel=0.05)  # LitGPT, no compile


def test_unpacked_examples_shorter_than_seq_len_run_at_their_own_length():
    def hours(seq_len, packing=False):
        return estimate(resolve_model("meta-llama/Llama-3.1-8B"), Method.LORA, resolve_hardware("rtx-4090"),
                        TrainSettings(batch_size=1, seq_len=seq_len, packing=packing), examples=5_000,
                        avg_tokens_per_example=400).time_hours

    assert hours(8192) == pytest.approx(hours(512))  # each sequence is 400 tokens either way
    assert hours(8192, packing=True) > 1.1 * hours(512, packing=True)  # packed: attention over 8192


def test_a_gpu_micro_step_takes_at_least_the_hosts_python_time():
    from advisor.compute import GPU_HOST_FLOOR_S

    def run(model):
        return estimate(resolve_model(model), Method.LORA, resolve_hardware("h100"),
                        TrainSettings(batch_size=1, seq_len=512), examples=10_000, avg_tokens_per_example=512)

    small = run("openai-community/gpt2")  # ~2 ms of kernels per micro-step: host-bound
    assert small.time_hours * 3600 == pytest.approx(10_000 * GPU_HOST_FLOOR_S, rel=0.01)
    assert any("host's" in a for a in small.assumptions)
    big = run("meta-llama/Llama-3.1-8B")  # ~0.1 s of kernels per micro-step: the floor does not bind
    assert big.time_hours * 3600 > 2 * 10_000 * GPU_HOST_FLOOR_S
    assert not any("host's" in a for a in big.assumptions)


# ------------------------------------------------------------------ host (CPU) estimates


def test_on_a_host_lora_steps_cost_their_flop_ratio_of_full_fine_tuning():
    """Measured on CPU (benchmarks/estimate_cpu.py): LoRA's step is 0.75 x full's with
    checkpointing, its FLOP ratio -- no GPU kernel penalty on a host; on a GPU there is one."""
    def hours(method, gpu):
        return est("meta-llama/Llama-3.2-1B", method, gpu=gpu, precision="fp32" if gpu == "cpu" else "bf16",
                   seq_len=256).time_hours

    assert hours("lora", "cpu") / hours("full", "cpu") == pytest.approx(3 / 4, rel=0.02)
    assert hours("lora", "a100-80gb") / hours("full", "a100-80gb") > 3 / 4


def test_a_host_run_adds_the_runtime_growth_of_training_but_prompting_does_not():
    from advisor.memory import ALLOCATOR_RESERVE, HOST_TRAINING_RUNTIME_GIB, RUNTIME_GIB_HOST

    def overhead(method):
        mem = est("meta-llama/Llama-3.2-1B", method, gpu="cpu", precision="fp32", seq_len=256).memory
        return mem.overhead - ALLOCATOR_RESERVE * (mem.allocated - mem.pageable)

    assert overhead("lora") == pytest.approx(RUNTIME_GIB_HOST + HOST_TRAINING_RUNTIME_GIB, abs=1e-6)
    assert overhead("prompt") == pytest.approx(RUNTIME_GIB_HOST, abs=1e-6)


def test_a_cost_that_overflows_is_not_reported_as_infinite():
    est = estimate(resolve_model(LLAMA7), Method.LORA, resolve_hardware("rtx-4090"), TrainSettings(batch_size=1),
                   gpus=2, tokens=10**9, price_usd_per_hour=1.7e308)
    assert est.cost_usd is None and any("cost_usd overflowed" in w for w in est.warnings)
    assert est.time_hours is not None
