"""Runners on CUDA (skipped without a GPU): bf16, 4-bit on the GPU, measured CUDA peaks.

    .venv/bin/python -m pytest tests/gpu/test_runners_gpu.py

The CPU tests cover the mechanics; these check what only a GPU has: the resolved bf16
precision, bitsandbytes NF4 weights on the device, and `torch.cuda.max_memory_*` peaks
recorded next to the advisor's estimate.  On the tiny model the estimate is dominated by
fixed overheads, so the bound is one-sided: the measured allocated peak must not exceed
the estimated total (an estimate below a real run's use is the failure users pay for).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from runner_kit import arithmetic_rows, make_plan, preference_rows, write_jsonl  # noqa: E402

from runners import run_plan  # noqa: E402
from tunewise.methods import Method  # noqa: E402


@pytest.mark.gpu
@pytest.mark.parametrize("method", [Method.LORA, Method.QLORA, Method.FULL])
def test_sft_on_cuda_records_cuda_peaks(model_dir, tmp_path, method):
    import torch

    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(32))
    plan = make_plan(model_dir, method, train, precision="bf16", max_steps=4)
    record = run_plan(plan, tmp_path / "runs", device="cuda")
    peak = record.peak_memory
    assert record.status == "completed" and peak.device == "cuda"
    assert peak.reserved_gib >= peak.allocated_gib > 0
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert record.config["runtime"]["precision"] == expected
    assert peak.allocated_gib <= record.estimate["memory_gib"]["total"]
    assert record.trainable_params == record.estimate["trainable_params"]


@pytest.mark.gpu
def test_dpo_on_cuda_starts_at_ln2(model_dir, tmp_path):
    import json
    import math

    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(8))
    run_plan(make_plan(model_dir, Method.DPO, pairs, batch_size=8, max_steps=2, precision="bf16"), tmp_path,
             device="cuda")
    first = json.loads((tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(first["loss"] - math.log(2)) < 1e-2  # bf16 log-probs: looser than the CPU fp32 check
