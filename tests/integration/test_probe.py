"""`tunewise advise --probe` and `--probe-data` on the tiny model (CPU).

    .venv/bin/python -m pytest tests/integration/test_probe.py

--probe: measured tokens/s and peak memory, time and cost derived from them, and the probe
lands in the run history so the next estimate on this CPU is calibrated by it.
--probe-data: three short LoRA runs (25/50/100% of the training rows), per-example held-out
losses, a fitted curve with a bootstrap interval.
"""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from tunewise.cli import cli


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory):
    from tunewise.assets import demo_data_path

    rows = demo_data_path("domain_500.jsonl").read_text().splitlines()[:30]
    path = tmp_path_factory.mktemp("probe") / "train.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def advise(model, data, *extra, batch=2):
    result = CliRunner().invoke(cli, ["advise", "--model", str(model), "--data", str(data), "--method", "lora",
                                      "--batch-size", str(batch), "--grad-accum", "1", "--epochs", "1", "--json",
                                      *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # progress lines go to stderr


@pytest.mark.slow
def test_probe_measures_throughput_memory_time_and_cost_and_feeds_the_history(
        tiny_model_dir, chat_file, tmp_path, monkeypatch):
    from advisor.calibration import load_calibration
    from advisor.hardware import resolve_hardware

    monkeypatch.delenv("TUNEWISE_NO_HISTORY", raising=False)
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    # 80 steps: the calibration ignores runs shorter than 5 steps or 1 s (one thread runs the
    # tiny model at up to ~40 steps/s)
    advice = advise(tiny_model_dir, chat_file, "--probe", "--probe-steps", "80", "--price", "2.0", "--no-history")
    probe = advice["probe"]
    assert probe["steps"] == 80 and probe["device"] == "cpu"
    assert probe["tokens_per_s"] > 0 and probe["tokens_per_s_average"] > 0
    assert probe["measured_gib"] is not None and probe["measured_gib"] >= 0
    assert probe["memory_kind"].startswith("CPU RSS")
    chosen = next(c for c in advice["candidates"] if c["verdict"] == "recommended")
    assert probe["tokens"] == chosen["tokens"] and probe["analytic_hours"] == chosen["time_hours"]
    assert probe["measured_hours"] == pytest.approx(probe["tokens"] / probe["tokens_per_s"] / 3600, rel=1e-3)
    assert probe["measured_cost_usd"] == pytest.approx(probe["measured_hours"] * 2.0, rel=1e-6)
    cal = load_calibration(resolve_hardware("cpu"), history=True)  # the probe is now in the history
    assert [s.method.value for s in cal.samples] == ["lora"]
    assert cal.samples[0].mfu > 0
    later = advise(tiny_model_dir, chat_file)  # history on: the next advice is calibrated by the probe
    lora = next(c for c in later["candidates"] if c["method"] == "lora")
    assert any("calibrated from 1 local run" in a for a in lora["assumptions"])


@pytest.mark.slow
def test_probe_data_fits_heldout_loss_against_examples(tiny_model_dir, chat_file):
    advice = advise(tiny_model_dir, chat_file, "--probe-data", "--no-history", "--target-improvement", "0.05",
                    batch=6)
    curve = advice["data_probe"]
    points = curve["points"]
    assert [p["examples"] for p in points] == [6, 12, 24]  # 30 rows: 6 held out, 25/50/100% of the other 24
    assert [p["steps"] for p in points] == [1, 2, 4]  # one epoch at batch 6
    assert all(p["heldout_examples"] == 6 and math.isfinite(p["heldout_loss"]) for p in points)
    assert all(p["stderr"] > 0 for p in points)
    assert curve["target_loss"] == pytest.approx(points[-1]["heldout_loss"] * 0.95, rel=1e-4)
    low, high = curve["interval"]
    if curve["examples_needed"] is not None:
        assert low is not None and low <= curve["examples_needed"]
        assert high is None or curve["examples_needed"] <= high
    else:
        assert curve["unreachable_share"] > 0
    assert any("held-out: 6 examples split from" in a for a in curve["assumptions"])


def test_per_example_loss_sums_match_the_mean_token_loss():
    import torch

    from runners.data_probe import _loss_sums

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = -100  # a masked prompt
    labels[2, 5:] = -100  # padding
    sums = _loss_sums(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
    assert (sums[:, 0].sum() / sums[:, 1].sum()).item() == pytest.approx(expected.item(), rel=1e-6)
    assert sums[:, 1].tolist() == [3.0, 6.0, 4.0]


def test_probe_without_cuda_refuses_a_gpu_advice(tiny_model_dir, chat_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(cli, ["advise", "--model", str(tiny_model_dir), "--data", str(chat_file),
                                      "--method", "lora", "--gpu", "a100-80gb", "--probe", "--no-history"])
    assert result.exit_code == 2
    assert "no CUDA GPU" in result.output and "Traceback" not in result.output
