"""SFT runners (lora, qlora, full) on the tiny model, CPU: what training changed and what it saved.

    .venv/bin/python -m pytest tests/integration/test_runners_sft.py
"""

from __future__ import annotations

import importlib

import pytest
import torch
from runner_kit import (
    arithmetic_rows,
    chat_rows,
    make_plan,
    metrics,
    snapshot_callback,
    write_jsonl,
)

from runners import RUNNERS, run_plan
from tunewise.methods import Method

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", arithmetic_rows(24))


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, train_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    snap = snapshot_callback()
    record = run_plan(make_plan(tiny_model_dir, Method.LORA, train_file), out, merge=True, callbacks=[snap])
    return out / "lora", record, snap


def _split(state: dict) -> tuple[dict, dict]:
    base = {k: v for k, v in state.items() if "lora_" not in k}
    adapter = {k: v for k, v in state.items() if "lora_" in k}
    return base, adapter


def _advisor_trainable(model_dir, method, settings) -> int:
    from advisor.estimate import estimate
    from advisor.hardware import resolve_hardware
    from advisor.models import resolve_model

    return estimate(resolve_model(str(model_dir)), method, resolve_hardware("cpu"), settings).trainable_params


def _adapter_numel(adapter_dir) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(adapter_dir / "adapter_model.safetensors").values())


def test_lora_freezes_base_and_trains_adapter(lora_run):
    run_dir, record, snap = lora_run
    assert record.status == "completed" and record.steps == 3 == record.planned_steps
    base_before, adapter_before = _split(snap.before)
    base_after, adapter_after = _split(snap.after)
    assert base_before.keys() == base_after.keys() and base_before
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before), "a base weight changed"
    changed = [k for k in adapter_before if not torch.equal(adapter_before[k], adapter_after[k])]
    assert any("lora_B" in k for k in changed) and any("lora_A" in k for k in changed)


def test_lora_trainable_count_equals_peft_and_advisor(lora_run, tiny_model_dir):
    run_dir, record, _ = lora_run
    plan = make_plan(tiny_model_dir, Method.LORA, run_dir)
    assert record.trainable_params == _adapter_numel(run_dir / "adapter")
    assert record.trainable_params == _advisor_trainable(tiny_model_dir, Method.LORA, plan.settings)


def test_saved_adapter_loads_with_plain_peft_and_generates(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, record, _ = lora_run
    adapter = run_dir / "adapter"
    assert not list(adapter.glob("*.bin")) and (adapter / "adapter_model.safetensors").exists()
    config = __import__("json").loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    tok = AutoTokenizer.from_pretrained(adapter)
    inputs = tok("What is 2+3? ", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    with torch.no_grad():
        tuned = model(**inputs).logits
        with model.disable_adapter():
            plain = model(**inputs).logits
    assert not torch.allclose(tuned, plain), "the adapter does not change the output"


def test_merge_writes_an_equivalent_plain_model(lora_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir, record, _ = lora_run
    assert record.artifacts["merged"] == "merged" and not list((run_dir / "merged").glob("*.bin"))
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(record.base_model)
    peft = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-4)


def test_same_seed_gives_the_same_loss_curve(lora_run, tiny_model_dir, train_file, tmp_path):
    run_dir, _, _ = lora_run
    run_plan(make_plan(tiny_model_dir, Method.LORA, train_file, name="again"), tmp_path)
    assert [r["loss"] for r in metrics(tmp_path / "again")] == [r["loss"] for r in metrics(run_dir)]


def test_qlora_keeps_the_4bit_base_and_trains_the_adapter(tiny_model_dir, train_file, tmp_path):
    snap = snapshot_callback()
    plan = make_plan(tiny_model_dir, Method.QLORA, train_file)
    record = run_plan(plan, tmp_path, callbacks=[snap])
    base_before, adapter_before = _split(snap.before)
    base_after, adapter_after = _split(snap.after)
    packed = [k for k, v in base_before.items() if v.dtype == torch.uint8]
    assert packed, "no 4-bit packed weights: the base was not quantised"
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)
    assert any(not torch.equal(adapter_before[k], adapter_after[k]) for k in adapter_before if "lora_B" in k)
    assert record.trainable_params == _adapter_numel(tmp_path / "qlora" / "adapter")
    assert record.trainable_params == _advisor_trainable(tiny_model_dir, Method.QLORA, plan.settings)
    assert "nf4" in record.config["upstream"]["quantization"]


def test_full_fine_tuning_changes_weights_and_lowers_the_loss(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    train = write_jsonl(tmp_path / "eight.jsonl", arithmetic_rows(8, seed=3))
    snap = snapshot_callback()
    # One batch of all 8 examples every step: the loss of a fixed batch must go down.
    plan = make_plan(tiny_model_dir, Method.FULL, train, batch_size=8, max_steps=6)
    record = run_plan(plan, tmp_path / "runs", callbacks=[snap])
    changed = [k for k in snap.before if not torch.equal(snap.before[k], snap.after[k])]
    assert len(changed) > len(snap.before) // 2
    losses = [r["loss"] for r in metrics(tmp_path / "runs" / "full")]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.05
    model_dir = tmp_path / "runs" / "full" / "model"
    assert (model_dir / "model.safetensors").exists() and not list(model_dir.glob("*.bin"))
    reloaded = AutoModelForCausalLM.from_pretrained(model_dir)
    assert torch.equal(reloaded.state_dict()["model.norm.weight"], snap.after["model.norm.weight"])
    assert record.trainable_params == sum(p.numel() for p in reloaded.parameters())
    assert record.trainable_params == _advisor_trainable(tiny_model_dir, Method.FULL, plan.settings)


def test_text_data_with_packing_trains(tiny_model_dir, tmp_path):
    rows = [{"text": f"{a}+{b}={a + b}. The shop opens at {a} am."} for a in range(6) for b in range(4)]
    train = write_jsonl(tmp_path / "text.jsonl", rows)
    record = run_plan(make_plan(tiny_model_dir, Method.LORA, train, packing=True, max_steps=2), tmp_path / "runs")
    assert record.status == "completed" and record.steps == 2
    assert record.config["loss"] == "full_sequence" and record.config["settings"]["packing"] is True


def test_chat_loss_mask_follows_the_template(tiny_model_dir, tmp_path):
    from conftest import CHAT_TEMPLATE

    from runners._data import prepare_sft
    from runners._train import load_tokenizer
    from tunewise.data import load_dataset
    from tunewise.settings import TrainSettings

    data = load_dataset(write_jsonl(tmp_path / "chat.jsonl", chat_rows(6)))
    tok = load_tokenizer(str(tiny_model_dir))
    tok.chat_template = CHAT_TEMPLATE
    assert prepare_sft(data, tok, TrainSettings(seq_len=128)).loss == "assistant_only"
    tok.chat_template = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    prepared = prepare_sft(data, tok, TrainSettings(seq_len=128))
    assert prepared.loss == "last_turn_completion"
    first = prepared.rows[0]
    assert first["completion"] == [data.rows[0]["messages"][-1]] and first["prompt"] == data.rows[0]["messages"][:-1]


def test_replay_mixes_the_requested_fraction_of_general_data(tiny_model_dir, tmp_path):
    from runners._data import prepare_sft
    from runners._train import load_tokenizer
    from tunewise.data import load_dataset
    from tunewise.settings import TrainSettings

    domain = load_dataset(write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(30)))
    general = load_dataset(write_jsonl(tmp_path / "g.jsonl", [{"text": f"Fact {i}: water is wet."} for i in range(50)]))
    prepared = prepare_sft(domain, load_tokenizer(str(tiny_model_dir)), TrainSettings(seq_len=96, replay=0.25), general)
    mixed = [r for r in prepared.rows if r["prompt"] == "" and r["completion"].startswith("Fact")]
    assert len(prepared.rows) == 40 and len(mixed) == 10  # 10 / 40 = 0.25
    assert prepared.report["replay"]["general_examples"] == 10
    from runners._data import read_general_rows  # without data.general: the bundled general corpus

    assert read_general_rows(None).path.name == "general_corpus.jsonl" and len(read_general_rows(None)) > 100


@pytest.mark.parametrize("method", sorted(RUNNERS, key=str))
def test_every_runner_entry_imports(method):
    module, attr = RUNNERS[method].split(":")
    runner = getattr(importlib.import_module(module), attr)
    assert all(callable(getattr(runner, name, None)) for name in ("prepare", "train", "save"))
