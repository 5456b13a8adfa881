"""benchmarks/gpu_calibration.py on a real GPU: one small setting, measured and traced.

    .venv/bin/python -m pytest tests/gpu/test_gpu_calibration.py   (skipped without CUDA)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import gpu_calibration  # noqa: E402


@pytest.mark.gpu
def test_small_lora_setting_is_measured_and_agrees_with_its_fake_trace(tmp_path):
    from runners.trace import trace
    from tunewise.settings import TrainSettings

    rows = gpu_calibration.run_grid(["Qwen/Qwen2.5-0.5B"], ((1, 512, True),), device="cuda", steps=2,
                                    budget_s=300, log=print)
    lora = next(r for r in rows if r["method"] == "lora")
    assert lora["status"] == "ok"
    assert 0 < lora["allocated_gib"] <= lora["reserved_gib"]
    assert lora["tokens_per_s"] > 0
    traced = trace("Qwen/Qwen2.5-0.5B", "lora", TrainSettings(batch_size=1, seq_len=512))
    # the trace leaves out CUDA workspaces and allocator rounding only
    assert lora["allocated_gib"] == pytest.approx(traced.peak_bytes / 1024**3, rel=0.25)
    out = gpu_calibration.write_csv(rows, tmp_path / "gpu.csv")
    assert "median |error|" in gpu_calibration.analyze(out)
