"""Fake-tensor traces of one training step: they count what a real step holds, byte for byte.

    .venv/bin/python -m pytest tests/integration/test_trace.py

A tiny Llama (2 layers, 256 wide) is traced under fake tensors and also run for real on
the CPU through the identical code path; the live-storage accounting must agree.  Exact
arithmetic pins the static categories (weights, adapter, gradients, Adam states), the
depth extrapolation must reproduce a full-depth trace, and `tunewise estimate --trace`
must trace Llama-2-7B without allocating it.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from runners.trace import trace, trace_extrapolated  # noqa: E402
from tunewise.errors import InputError  # noqa: E402
from tunewise.settings import TrainSettings  # noqa: E402

GIB = 1024**3
FUSED_ADAM_STEP_BYTES = 4  # torch AdamW(fused=True) keeps one fp32 `step` scalar per parameter


def tiny_config(layers: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)


def settings(**kw) -> TrainSettings:
    base = dict(batch_size=2, seq_len=64, lora_rank=8)
    return TrainSettings(**{**base, **kw})


@functools.cache
def traced(method: str, s: TrainSettings, layers: int = 2):
    """One fake trace per distinct setting, shared by the tests that read it."""
    return trace(tiny_config(layers), method, s)


def meta_model(dtype=None):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(tiny_config(), dtype=dtype)


def static_bytes(model) -> int:
    """Parameters + buffers (the rotary inv_freq tables) of a model."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


CASES = [("full", False, {}), ("full", True, {}), ("lora", False, {}), ("lora", True, {}),
         ("qlora", True, {}), ("dpo", True, {}), ("dpo", False, {"dpo_lora": False})]


@pytest.mark.parametrize(("method", "checkpointing", "extra"), CASES)
def test_fake_trace_matches_a_real_cpu_step(method, checkpointing, extra):
    s = settings(gradient_checkpointing=checkpointing, **extra)
    fake, real = traced(method, s), trace(tiny_config(), method, s, fake=False)
    assert fake.trainable_params == real.trainable_params
    # a few bytes of scalar constants may be created once per process under fake mode
    assert abs(fake.peak_bytes - real.peak_bytes) <= 64
    for category in ("weights", "reference", "adapter", "gradients", "optimizer", "activations"):
        assert fake.at_peak[category] == real.at_peak[category], category
        assert fake.category_peaks[category] == real.category_peaks[category], category


@pytest.mark.parametrize(("precision", "dtype", "nbytes"),
                         [("amp", torch.float32, 4), ("bf16", torch.bfloat16, 2)])
def test_full_finetuning_holds_master_weights_grads_and_two_adam_states(precision, dtype, nbytes):
    """amp: fp32 masters (16 B/param); pure bf16: everything in bf16 (8 B/param)."""
    model = meta_model(dtype)
    numel = sum(p.numel() for p in model.parameters())
    tensors = len(list(model.parameters()))
    result = traced("full", settings(precision=precision))
    assert result.params == result.trainable_params == numel
    assert result.category_peaks["weights"] == static_bytes(model)
    assert result.category_peaks["gradients"] == numel * nbytes
    assert result.at_peak["optimizer"] == 2 * numel * nbytes + tensors * FUSED_ADAM_STEP_BYTES
    assert result.category_peaks["adapter"] == 0


@pytest.mark.parametrize(("precision", "nbytes"), [("amp", 4), ("bf16", 2)])
def test_lora_adapter_gradients_and_states_are_exact_multiples_of_trainable_params(precision, nbytes):
    """amp: peft's fp32 adapters; pure bf16: the runners cast them to bf16."""
    from peft import get_peft_model

    from runners.translate import _lora

    model = meta_model(torch.bfloat16)
    base_bytes = static_bytes(model)
    peft_model = get_peft_model(model, _lora(settings()))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in trainable)
    result = traced("lora", settings(precision=precision))
    assert result.trainable_params == n
    assert result.at_peak["weights"] == base_bytes  # frozen base in bf16, untouched
    assert result.at_peak["adapter"] == n * nbytes
    assert result.category_peaks["gradients"] == n * nbytes  # gradients only for the adapter
    assert result.at_peak["optimizer"] == 2 * n * nbytes + len(trainable) * FUSED_ADAM_STEP_BYTES


def test_qlora_weights_are_nf4_with_double_quantised_absmax():
    cfg = tiny_config()
    h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    linears = [h * h, h * kv, h * kv, h * h, h * inter, h * inter, inter * h]  # q k v o gate up down
    quantized = layers * sum(linears)
    # per linear: uint8 absmax per 64 weights, fp32 absmax per 256 of those, fp32 offset,
    # the 16-entry NF4 code and the 256-entry dynamic map of the nested quantisation (fp32)
    constants = layers * sum(n // 64 + 4 * -(-(n // 64) // 256) + 4 + 16 * 4 + 256 * 4 for n in linears)
    sixteen_bit = 2 * (2 * cfg.vocab_size * h + (2 * layers + 1) * h)  # embed, lm_head, norms
    rotary = 2 * 4 * (h // cfg.num_attention_heads // 2)  # inv_freq + original_inv_freq, fp32
    result = traced("qlora", settings())
    assert result.at_peak["weights"] == quantized // 2 + constants + sixteen_bit + rotary
    lora = traced("lora", settings(precision="amp"))
    assert result.at_peak["adapter"] * 2 == lora.at_peak["adapter"]  # trl: QLoRA adapters bf16, peft's fp32


def test_dpo_runs_chosen_and_rejected_and_keeps_a_reference_copy_only_for_full_weights():
    sft = traced("lora", settings(lora_dropout=0.0))
    dpo = traced("dpo", settings(lora_dropout=0.0))
    assert dpo.dpo_adapter is True and dpo.category_peaks["reference"] == 0
    assert dpo.category_peaks["activations"] > 1.5 * sft.category_peaks["activations"]  # 2x rows
    full = traced("dpo", settings(dpo_lora=False))
    assert full.dpo_adapter is False
    assert full.category_peaks["reference"] == full.category_peaks["weights"]


def test_checkpointing_and_longer_sequences_change_activations_only():
    on = traced("lora", settings(gradient_checkpointing=True, seq_len=128))
    off = traced("lora", settings(gradient_checkpointing=False, seq_len=128))
    short = traced("lora", settings(gradient_checkpointing=False))
    assert on.category_peaks["activations"] < off.category_peaks["activations"]
    assert short.category_peaks["activations"] < off.category_peaks["activations"]
    for category in ("weights", "adapter", "optimizer"):
        assert on.at_peak[category] == off.at_peak[category] == short.at_peak[category]


@pytest.mark.parametrize(("method", "checkpointing", "extra"),
                         [("full", False, {}), ("lora", True, {}), ("dpo", True, {"dpo_lora": False})])
def test_depth_extrapolation_reproduces_the_full_depth_trace(method, checkpointing, extra):
    s = settings(gradient_checkpointing=checkpointing, **extra)
    full, extrapolated = traced(method, s, layers=8), trace_extrapolated(tiny_config(8), method, s)
    assert extrapolated.extrapolated_from == (4, 5) and extrapolated.layers == 8
    assert abs(extrapolated.peak_bytes - full.peak_bytes) <= 64
    assert extrapolated.peak_phase == full.peak_phase
    for category, value in full.category_peaks.items():
        assert abs(extrapolated.category_peaks[category] - value) <= 64, category


def test_untraceable_method_is_a_clear_input_error():
    with pytest.raises(InputError, match="cannot trace method 'prompt'"):
        trace(tiny_config(), "prompt", settings())


@pytest.mark.slow
def test_cli_traces_llama2_7b_offline_without_allocating_it():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tunewise", "estimate", "--model", "meta-llama/Llama-2-7b-hf",
         "--method", "lora", "--gpu", "a100-80gb", "--batch-size", "2", "--seq-len", "1024",
         "--no-history", "--trace", "--json"],
        capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    block = out["trace"]
    assert out["schema"] == "tunewise/estimate/v1" and block["schema"] == "tunewise/trace/v1"
    rows = block["comparison"]
    assert rows["weights"]["traced_gib"] == pytest.approx(6_738_415_616 * 2 / GIB, abs=0.01)
    assert block["trainable_params"] == out["trainable_params"]  # advisor == peft, exactly
    assert rows["total"]["traced_gib"] > 12.5
    # the child never held the 12.6 GiB of weights it traced
    child_peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GIB
    assert child_peak_gib < 3.0
