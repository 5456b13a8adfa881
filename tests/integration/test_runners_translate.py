"""No dead config: every training setting the SFT/DPO runners claim changes the upstream objects.

    .venv/bin/python -m pytest tests/integration/test_runners_translate.py

Builds trl/peft/transformers configs only (no model, no training): each field is changed
on its own and the translated objects must differ from the defaults' translation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runners._common import RunContext, RunOptions, Runtime
from runners.translate import to_dpo, to_sft
from tunewise.methods import Method
from tunewise.plan import Plan
from tunewise.records import RunRecord
from tunewise.settings import TrainSettings

BASE = TrainSettings(learning_rate=1e-4)
# A changed value per field; each must reach the trl/peft/transformers objects.
SFT_CHANGES = {
    "batch_size": 8, "grad_accum": 2, "seq_len": 512, "epochs": 3.0, "max_steps": 7, "learning_rate": 3e-4,
    "warmup_ratio": 0.1, "lr_scheduler": "linear", "weight_decay": 0.01, "lora_rank": 8, "lora_alpha": 64,
    "lora_dropout": 0.1, "lora_targets": "q_proj,v_proj", "optimizer": "sgd", "gradient_checkpointing": False,
    "packing": True, "seed": 7, "logging_steps": 3, "save_steps": 9,
}
DPO_CHANGES = {"dpo_beta": 0.3, "seq_len": 512, "learning_rate": 3e-4}
# Read elsewhere, with the module that reads them (so a new field must be placed somewhere).
ELSEWHERE = {
    "precision": "runners._common.resolve_runtime", "zero_stage": "runners.accelerate_config",
    "strategy": "runners.accelerate_config", "cpu_offload": "runners.accelerate_config", "replay": "runners._data.prepare_sft",
    "num_fewshot": "runners.prompting", "dpo_lora": "runners.dpo.resolve_start",
}


def _ctx(settings: TrainSettings, tmp_path: Path) -> RunContext:
    plan = Plan(method=Method.LORA, model="m", settings=settings)
    runtime = Runtime("cpu", "fp32", "test")
    return RunContext(plan, settings, tmp_path, runtime, RunOptions(), RunRecord(name="t", method="lora", base_model="m"))


def _upstream(translate, settings, tmp_path, **kw) -> dict:
    up = translate(_ctx(settings, tmp_path), **kw)
    peft = up.peft_config.to_dict() if up.peft_config is not None else None
    return {"args": up.args.to_dict(), "peft": peft, "load": {k: str(v) for k, v in up.load_kwargs.items()}}


@pytest.mark.parametrize("field", sorted(SFT_CHANGES))
def test_sft_setting_reaches_upstream(field, tmp_path):
    kw = dict(loss="completion_only", adapter=True, quantized=False)
    changed = BASE.replace(**{field: SFT_CHANGES[field]})
    assert _upstream(to_sft, changed, tmp_path, **kw) != _upstream(to_sft, BASE, tmp_path, **kw)


@pytest.mark.parametrize("field", sorted(DPO_CHANGES))
def test_dpo_setting_reaches_upstream(field, tmp_path):
    kw = dict(adapter=True, new_adapter=True)
    changed = BASE.replace(**{field: DPO_CHANGES[field]})
    assert _upstream(to_dpo, changed, tmp_path, **kw) != _upstream(to_dpo, BASE, tmp_path, **kw)


def test_every_training_setting_has_a_reader():
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    rlhf = {f for f in fields if f.startswith("rlhf_")}  # the RLHF runner's own settings
    unclaimed = fields - set(SFT_CHANGES) - set(DPO_CHANGES) - set(ELSEWHERE) - rlhf
    assert not unclaimed, f"settings no runner reads: {sorted(unclaimed)}"


def test_qlora_translation_quantises_the_base(tmp_path):
    up = to_sft(_ctx(BASE, tmp_path), loss="completion_only", adapter=True, quantized=True)
    quant = up.load_kwargs["quantization_config"]
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    full = to_sft(_ctx(BASE, tmp_path), loss="full_sequence", adapter=False, quantized=False)
    assert full.peft_config is None and "quantization_config" not in full.load_kwargs
    assert not full.args.completion_only_loss


# precision -> (dtype of trained weights, of a frozen adapter base, Trainer bf16/fp16 autocast flags)
PRECISIONS = {
    "bf16": ("torch.bfloat16", "torch.bfloat16", (False, False)),  # pure bf16: no masters, no autocast
    "amp": ("torch.float32", "torch.bfloat16", (True, False)),  # fp32 masters + bf16 autocast
    "fp16": ("torch.float32", "torch.float16", (False, True)),  # fp32 masters + fp16 autocast
    "fp32": ("torch.float32", "torch.float32", (False, False)),
}


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_precision_means_what_it_says(precision, tmp_path):
    """advisor/memory.py's byte counts assume exactly this loading and autocast recipe."""
    from runners.translate import _load_kwargs

    trained, frozen, flags = PRECISIONS[precision]
    runtime = Runtime("cuda", precision, "test")
    assert str(_load_kwargs(runtime, adapter=False, quantized=False)["dtype"]) == trained
    assert str(_load_kwargs(runtime, adapter=True, quantized=False)["dtype"]) == frozen
    if precision != "fp16":  # TrainingArguments accepts fp16 only with a GPU present
        ctx = _ctx(BASE, tmp_path)
        ctx.runtime = Runtime("cpu", precision, "test")  # a CPU run forced to this precision
        args = to_sft(ctx, loss="full_sequence", adapter=False, quantized=False).args
        assert (args.bf16, args.fp16) == flags


def test_pure_bf16_casts_trainable_adapters_only():
    import torch

    from runners.translate import adapters_in_compute_dtype

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[0].requires_grad_(False)
    assert adapters_in_compute_dtype(model, Runtime("cuda", "amp", "test")) == 0
    assert adapters_in_compute_dtype(model, Runtime("cuda", "bf16", "test")) == 20
    assert model[1].weight.dtype == torch.bfloat16 and model[0].weight.dtype == torch.float32
