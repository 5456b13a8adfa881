"""benchmarks/gpu_calibration.py on the CPU with --tiny: the grid, the CSV and the analysis.

    .venv/bin/python -m pytest tests/integration/test_gpu_calibration_cpu.py

The CUDA grid cannot run here; the same code path runs the bundled tiny model on the CPU
(every method, checkpointing on and off) and must write the documented CSV columns, one
row per setting, and an analysis table against the advisor's estimate.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import gpu_calibration  # noqa: E402


@pytest.mark.slow
def test_tiny_grid_writes_one_row_per_setting_with_every_column(tmp_path, capsys):
    out = tmp_path / "tiny.csv"
    assert gpu_calibration.main(["--tiny", "--out", str(out), "--steps", "1", "--budget-s", "3600"]) == 0
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == gpu_calibration.COLUMNS
    settings = gpu_calibration.TINY_SETTINGS
    assert len(rows) == len(gpu_calibration.METHODS) * len(settings)
    assert {r["method"] for r in rows} == set(gpu_calibration.METHODS)
    assert {r["gradient_checkpointing"] for r in rows} == {"True", "False"}
    for row in rows:
        assert row["status"] == "ok", row
        assert float(row["tokens_per_s"]) > 0
        assert float(row["reserved_gib"]) > 0 and float(row["allocated_gib"]) >= 0
        assert row["gpu_name"] == "cpu" and row["torch"] and row["bitsandbytes"]
        assert int(row["params"]) > 0
        assert (row["lora_rank"] == "") == (row["method"] == "full")
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert printed.count(" ok") >= len(rows)  # every row compared with the estimate
    for method in gpu_calibration.METHODS:
        assert f"  {method:<6} {len(settings):>3} rows  median" in printed


def test_analysis_rejects_a_csv_without_the_documented_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,method\nx,lora\n")
    with pytest.raises(SystemExit, match="missing columns"):
        gpu_calibration.analyze(bad)


def test_cuda_device_names_map_to_catalog_hardware():
    assert gpu_calibration.hardware_for("NVIDIA H200", 139.8).name == "h200"
    assert gpu_calibration.hardware_for("NVIDIA A100-SXM4-80GB", 79.2).name == "a100-80gb"
    assert gpu_calibration.hardware_for("cpu", "").kind == "cpu"
    custom = gpu_calibration.hardware_for("Some Future GPU", 96.0)
    assert custom.memory_gib == pytest.approx(96.0)
