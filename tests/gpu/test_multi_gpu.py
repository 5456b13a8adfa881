"""Several GPUs (skipped without at least 2): DDP, FSDP2 and DeepSpeed through `tunewise run`.

    .venv/bin/python -m pytest tests/gpu/test_multi_gpu.py

The CPU tests cover the launcher and the generated configs; these run what only GPUs can:
FSDP full sharding (with and without CPU offload, and QLoRA with its 4-bit weights stored
in bf16), DDP on NCCL, and DeepSpeed ZeRO-2/3 where the package is installed.  Each run
checks what accelerate actually ran, that every rank measured a CUDA peak, that training
moved the weights and that the artifact loads with plain PEFT / transformers.  In fp32 the
two-GPU loss curve must match one GPU with the same global batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl  # noqa: E402

from runners import run_plan  # noqa: E402
from tunewise.methods import Method  # noqa: E402


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_gpus() < 2, reason=f"needs at least 2 CUDA GPUs (found {_gpus()})"),
]
# fp32 on GPU: the split batch sums in a different order (and TF32 may be on), so looser
# than the CPU test's 1e-4, still far below what a wrong gradient sync would show.
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", arithmetic_rows(64))


@pytest.fixture(scope="module")
def one_gpu(model_dir, train, tmp_path_factory):
    """LoRA on one GPU, global batch 4: the curve the 2-GPU runs (batch 2 each) must follow."""
    out = tmp_path_factory.mktemp("one")
    run_plan(make_plan(model_dir, Method.LORA, train, name="one", batch_size=4, max_steps=4, precision="fp32"), out,
             device="cuda")
    return [r["loss"] for r in metrics(out / "one")]


def _run(model_dir, train, out, method=Method.LORA, **settings):
    values = dict(batch_size=2, max_steps=4, precision="fp32") | settings
    plan = make_plan(model_dir, method, train, name="multi", **values)
    record = run_plan(plan, out, num_processes=2, device="cuda")
    assert record.status == "completed" and record.hardware["count"] == 2
    ranks = record.peak_memory.per_rank
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["device"] == "cuda" and r["allocated_gib"] > 0
                                                         for r in ranks)
    return record


def _adapter_changed(model_dir, run_dir: Path) -> None:
    """The adapter loads with plain PEFT and training moved it off LoRA's zero start (B = 0)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_match_one_gpu(model_dir, train, tmp_path, one_gpu, strategy):
    record = _run(model_dir, train, tmp_path, strategy=strategy, zero_stage=3 if strategy == "fsdp" else 0)
    expected_type = {"ddp": "MULTI_GPU", "fsdp": "FSDP"}[strategy]
    assert record.config["distributed"]["accelerate_distributed_type"] == expected_type
    assert [r["loss"] for r in metrics(tmp_path / "multi")] == pytest.approx(one_gpu, rel=TOLERANCE)
    _adapter_changed(model_dir, tmp_path / "multi")


def test_fsdp_with_cpu_offload_trains(model_dir, train, tmp_path):
    record = _run(model_dir, train, tmp_path, strategy="fsdp", zero_stage=3, cpu_offload=True)
    config = record.config["distributed"]
    assert config["cpu_offload"] is True and config["accelerate_distributed_type"] == "FSDP"
    _adapter_changed(model_dir, tmp_path / "multi")


def test_fsdp_qlora_shards_bf16_stored_4bit_weights(model_dir, train, tmp_path):
    import torch

    if not torch.cuda.is_bf16_supported():
        pytest.skip("QLoRA with FSDP stores 4-bit weights in bf16: this GPU has no bf16")
    record = _run(model_dir, train, tmp_path, method=Method.QLORA, strategy="fsdp", zero_stage=3, precision="bf16")
    assert any("quant_storage" in n for n in record.config["distributed"]["notes"])
    _adapter_changed(model_dir, tmp_path / "multi")


def test_fsdp_full_fine_tuning_saves_a_whole_model(model_dir, train, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    _run(model_dir, train, tmp_path, method=Method.FULL, strategy="fsdp", zero_stage=2)
    before = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "multi" / "model").state_dict()
    assert before.keys() == after.keys()  # gathered from the shards: every weight, full shape
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_trains(model_dir, train, tmp_path, stage):
    pytest.importorskip("deepspeed", reason="strategy deepspeed needs: pip install deepspeed")
    record = _run(model_dir, train, tmp_path, strategy="deepspeed", zero_stage=stage, precision="amp")
    assert record.config["distributed"]["accelerate_distributed_type"] == "DEEPSPEED"
    assert (tmp_path / "multi" / "deepspeed_config.json").exists()
    _adapter_changed(model_dir, tmp_path / "multi")
