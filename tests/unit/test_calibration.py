"""Calibration from measured runs (advisor/calibration.py, advisor/run_history.py, the CLIs).

    .venv/bin/python -m pytest tests/unit/test_calibration.py

Synthetic run records are written as the runners write them (record.json, schema
tunewise/run/v1).  The core property: re-estimating exactly the configuration that ran,
the calibrated estimate reproduces the measured throughput and peak (medians), and
nothing changes for other hardware, failed or too-short runs, or far-away model sizes.

Malformed records are skipped with a warning naming the file (never fatal: one broken
record among many must not stop `advise`); a --calibrate-from path that does not exist is
an error (exit 2, one line).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor import compute
from advisor.calibration import MIN_STEPS, comparable_gib, load_calibration
from advisor.estimate import estimate
from advisor.hardware import resolve_hardware
from advisor.models import resolve_model
from advisor.run_history import ENV_OFF, history_path, local_cpu_name, remember, steady_tokens_per_s
from tunewise.cli import cli
from tunewise.errors import InputError
from tunewise.settings import TrainSettings

CPU_MODEL = str(Path(__file__).resolve().parents[2] / "tunewise" / "assets" / "tiny-llama")
GPU_MODEL = "meta-llama/Llama-3.1-8B"
SEQ = 64


def settings(**changes) -> TrainSettings:
    return TrainSettings(**{"batch_size": 4, "seq_len": SEQ, "precision": "fp32", **changes})


RUN_DEFAULTS = dict(method="lora", tokens_per_s=100.0, peak=None, steps=20, status="completed", device="cpu",
                    device_name=None, model=CPU_MODEL, run_settings=None, train_time_s=30.0, lengths=SEQ)


def write_run(root: Path, name: str, **fields) -> Path:
    """One runs/<name>/record.json in the shape the runners write (fields: RUN_DEFAULTS)."""
    f = {**RUN_DEFAULTS, **fields}
    run_settings = f["run_settings"] or settings()
    device = f["device"]
    record = {
        "schema": "tunewise/run/v1", "tunewise_version": "0.1.0", "name": name, "method": f["method"],
        "base_model": f["model"], "status": f["status"], "steps": f["steps"], "train_time_s": f["train_time_s"],
        "tokens_per_s": f["tokens_per_s"], "train_tokens": int(f["tokens_per_s"] * f["train_time_s"]),
        "peak_memory": f["peak"] if f["peak"] is not None else {"device": device, "rss_delta_gib": 0.5},
        "config": {"settings": vars(run_settings),
                   "data": {"tokens_mean": f["lengths"], "tokens_max": f["lengths"]}},
        "hardware": {"device": device, "count": 1,
                     "name": f["device_name"] if f["device_name"] is not None else local_cpu_name()},
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def cpu_estimate(cal=None, method="lora", spec_name=CPU_MODEL, hardware=None):
    return estimate(resolve_model(spec_name), method, hardware or resolve_hardware("cpu"), settings(),
                    tokens=1_000_000, calibration=cal)


def rate(est) -> float:
    return est.tokens / (est.time_hours * 3600)


def test_calibrated_estimate_reproduces_measured_throughput_and_rss(tmp_path):
    for i, (tps, rss) in enumerate([(80.0, 0.4), (100.0, 0.5), (5000.0, 0.6)]):  # the median ignores the outlier
        write_run(tmp_path, f"run{i}", tokens_per_s=tps, peak={"device": "cpu", "rss_delta_gib": rss})
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    assert len(cal.samples) == 3
    plain, learned = cpu_estimate(), cpu_estimate(cal)
    assert rate(learned) == pytest.approx(100.0, rel=1e-3)
    assert rate(plain) > 1000  # the uncalibrated CPU assumption is far off: the test can tell
    hw = resolve_hardware("cpu")
    assert comparable_gib(learned.memory, hw, 1) == pytest.approx(0.5, abs=1e-9)
    assert learned.memory_gib["total"] == pytest.approx(sum(v for k, v in learned.memory_gib.items() if k != "total"))


def test_assumptions_say_what_was_calibrated_and_from_which_runs(tmp_path):
    for i in range(3):
        write_run(tmp_path, f"lora{i}", tokens_per_s=50.0 + i)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    text = "\n".join(cpu_estimate(cal).assumptions)
    assert "for lora on cpu, calibrated from 3 local runs" in text
    assert str(tmp_path / "lora0") in text
    assert "memory calibrated for cpu" in text
    assert not any(a.startswith("MFU ") and "calibrated" not in a for a in cpu_estimate(cal).assumptions)
    assert "calibrated" not in "\n".join(cpu_estimate().assumptions)


def test_fitted_mfu_is_the_measured_rate_times_flops_over_peak(tmp_path):
    write_run(tmp_path, "one", tokens_per_s=250.0)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    spec, hw = resolve_model(CPU_MODEL), resolve_hardware("cpu")
    fpt = compute.flops_per_token(spec, "lora", settings(), adapter=True)
    assert cal.samples[0].mfu == pytest.approx(250.0 * fpt / (hw.peak_tflops("fp32") * 1e12))


def test_gpu_reserved_peak_corrects_by_ratio_for_that_gpu_only(tmp_path):
    run = settings(precision="bf16", seq_len=2048, batch_size=2)
    spec, h100 = resolve_model(GPU_MODEL), resolve_hardware("h100-sxm")
    planned = estimate(spec, "qlora", h100, run, tokens=10**7)
    want = comparable_gib(planned.memory, h100, 1) * 1.2
    for i in range(2):
        write_run(tmp_path, f"q{i}", method="qlora", model=GPU_MODEL, device="cuda",
                  device_name="NVIDIA H100 80GB HBM3", run_settings=run, tokens_per_s=3000.0, lengths=2048,
                  peak={"device": "cuda", "allocated_gib": want / 1.3, "reserved_gib": want})
    cal = load_calibration(h100, [str(tmp_path)], history=False)
    learned = estimate(spec, "qlora", h100, run, tokens=10**7, calibration=cal)
    assert comparable_gib(learned.memory, h100, 1) == pytest.approx(want, rel=1e-6)
    assert rate(learned) == pytest.approx(3000.0, rel=1e-3)
    a100 = resolve_hardware("a100-80gb")
    other = load_calibration(a100, [str(tmp_path)], history=False)
    assert other.samples == [] and other.skipped == {"on other hardware": 2}
    assert estimate(spec, "qlora", a100, run, tokens=10**7, calibration=other).to_dict() == \
        estimate(spec, "qlora", a100, run, tokens=10**7).to_dict()


def test_runs_on_another_cpu_model_do_not_apply(tmp_path):
    write_run(tmp_path, "elsewhere", device_name="Some Other CPU 9000", tokens_per_s=1.0)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    assert cal.samples == [] and cal.skipped == {"on other hardware": 1}
    assert cpu_estimate(cal).to_dict() == cpu_estimate().to_dict()


def test_failed_and_short_runs_are_ignored(tmp_path):
    write_run(tmp_path, "good", tokens_per_s=100.0)
    write_run(tmp_path, "failed", tokens_per_s=1e6, status="failed")
    write_run(tmp_path, "short", tokens_per_s=1e6, steps=MIN_STEPS - 1)
    write_run(tmp_path, "instant", tokens_per_s=1e6, train_time_s=0.2)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    assert [s.source for s in cal.samples] == [str(tmp_path / "good")]
    assert cal.skipped["not completed"] == 1 and sum(cal.skipped.values()) == 3
    assert rate(cpu_estimate(cal)) == pytest.approx(100.0, rel=1e-3)


def test_malformed_records_are_skipped_with_a_warning_naming_the_file(tmp_path):
    write_run(tmp_path, "good", tokens_per_s=100.0)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "record.json").write_text("{not json")
    write_run(tmp_path, "wrongtype", tokens_per_s=100.0)
    path = tmp_path / "wrongtype" / "record.json"
    path.write_text(path.read_text().replace('"steps": 20', '"steps": "many"'))
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    assert len(cal.samples) == 1
    assert any(str(broken / "record.json") in w and "skipped" in w for w in cal.warnings)
    assert any("wrongtype" in w and "malformed" in w for w in cal.warnings)
    assert any("wrongtype" in line for line in cal.summary())


def test_a_missing_calibrate_from_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as err:
        load_calibration(resolve_hardware("cpu"), [str(tmp_path / "nope")], history=False)
    assert str(tmp_path / "nope") in str(err.value)


def test_other_methods_scale_the_default_mfu(tmp_path):
    write_run(tmp_path, "lora", tokens_per_s=100.0)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    # without the fixed per-step overhead, which a calibrated MFU already contains
    no_overhead = dataclasses.replace(resolve_hardware("cpu"), step_overhead_s=None)
    plain, learned = cpu_estimate(method="full", hardware=no_overhead), cpu_estimate(cal, method="full")
    lora_factor = cal.samples[0].mfu / cal.samples[0].default_mfu
    assert plain.time_hours / learned.time_hours == pytest.approx(lora_factor, rel=1e-6)
    assert any("of other methods" in a for a in learned.assumptions)


def test_runs_of_far_smaller_models_do_not_calibrate_large_ones(tmp_path):
    write_run(tmp_path, "tiny", tokens_per_s=10.0)
    cal = load_calibration(resolve_hardware("cpu"), [str(tmp_path)], history=False)
    big = "Qwen/Qwen2.5-0.5B"  # >100x the tiny model's parameters
    assert cpu_estimate(cal, spec_name=big).to_dict() == cpu_estimate(spec_name=big).to_dict()


def test_steady_rate_leaves_out_the_first_logged_step():
    rows = [{"step": 1, "tokens": 100, "tokens_per_s": 10.0},  # 10 s of warm-up
            {"step": 5, "tokens": 500, "tokens_per_s": 100.0},  # 400 tokens in 4 s
            {"step": 10, "tokens": 1100, "tokens_per_s": 300.0}]  # 600 tokens in 2 s
    assert steady_tokens_per_s(rows) == pytest.approx(1000 / 6, rel=1e-5)
    assert steady_tokens_per_s(rows[:1]) is None


def test_history_is_written_read_and_deduplicated(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_OFF, raising=False)
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    runs = tmp_path / "work" / "runs"
    folder = write_run(runs, "lora", tokens_per_s=100.0)
    (folder / "metrics.jsonl").write_text(
        '{"step": 1, "tokens": 10, "tokens_per_s": 1.0}\n{"step": 5, "tokens": 410, "tokens_per_s": 200.0}\n')
    record = json.loads((folder / "record.json").read_text())
    assert remember(record, folder) == history_path()
    remember({**record, "status": "failed"}, folder)  # failed runs are not remembered
    lines = history_path().read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["steady_tokens_per_s"] == 200.0
    monkeypatch.chdir(tmp_path / "work")  # ./runs holds the same run: it must count once
    cal = load_calibration(resolve_hardware("cpu"), history=True)
    assert len(cal.samples) == 1 and "history.jsonl" in cal.samples[0].source
    assert rate(cpu_estimate(cal)) == pytest.approx(200.0, rel=1e-3)  # steady rate, not the average
    monkeypatch.setenv(ENV_OFF, "1")
    assert load_calibration(resolve_hardware("cpu"), history=True) is None
    assert remember(record, folder) is None


# ----------------------------------------------------------------------------- CLI


def test_estimate_cli_calibrates_from_a_runs_folder(tmp_path):
    write_run(tmp_path / "runs", "lora", tokens_per_s=100.0)
    args = ["estimate", "--model", CPU_MODEL, "--method", "lora", "--gpu", "cpu", "--seq-len", str(SEQ),
            "--precision", "fp32", "--batch-size", "4", "--tokens", "360000", "--no-history"]
    plain = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    result = CliRunner().invoke(cli, [*args, "--json", "--calibrate-from", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    learned = json.loads(result.output)
    assert learned["time_hours"] == pytest.approx(1.0, rel=1e-3)  # 360,000 tokens at 100 tokens/s
    assert plain["time_hours"] < 0.1
    assert any("calibrated from 1 local run" in a for a in learned["assumptions"])
    text = CliRunner().invoke(cli, [*args, "--calibrate-from", str(tmp_path / "runs")]).output
    assert "calibration: 1 measured run(s) on cpu (lora)" in text


def test_advise_cli_calibrates_every_candidate_and_says_so(tmp_path):
    write_run(tmp_path / "runs", "lora", tokens_per_s=100.0)
    result = CliRunner().invoke(cli, ["advise", "--model", CPU_MODEL, "--examples", "500", "--tokens-per-example",
                                      "40", "--calibrate-from", str(tmp_path / "runs"), "--no-history", "--json"])
    assert result.exit_code == 0, result.output
    advice = json.loads(result.output)
    by_method = {c["method"]: c for c in advice["candidates"]}
    assert any("calibrated from 1 local run" in a for a in by_method["lora"]["assumptions"])
    assert any("of other methods" in a for a in by_method["full"]["assumptions"])
    assert any(n.startswith("calibration: 1 measured run") for n in advice["recommendation"]["notes"])
    assert advice["calibration"]["samples"][0]["method"] == "lora"


def test_no_history_ignores_the_history(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_OFF, raising=False)
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    folder = write_run(tmp_path / "elsewhere", "lora", tokens_per_s=100.0)
    remember(json.loads((folder / "record.json").read_text()), folder)
    monkeypatch.chdir(tmp_path)
    args = ["estimate", "--model", CPU_MODEL, "--gpu", "cpu", "--seq-len", str(SEQ), "--precision", "fp32",
            "--batch-size", "4", "--tokens", "360000", "--json"]
    auto = json.loads(CliRunner().invoke(cli, args).output)
    off = json.loads(CliRunner().invoke(cli, [*args, "--no-history"]).output)
    assert auto["time_hours"] == pytest.approx(1.0, rel=1e-3)
    assert off["time_hours"] < 0.1


def test_missing_calibrate_from_is_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["advise", "--model", CPU_MODEL, "--calibrate-from", str(tmp_path / "gone")])
    assert result.exit_code == 2
    assert "gone" in result.output and "Traceback" not in result.output


def test_only_the_first_run_of_a_process_calibrates_memory(tmp_path, monkeypatch):
    import advisor.run_history as run_history

    monkeypatch.delenv(ENV_OFF, raising=False)
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(run_history, "_remembered_here", 0)
    for name, rss in (("first", 0.5), ("second", 0.01)):  # the second reuses the first's freed memory
        folder = write_run(tmp_path / "runs", name, peak={"device": "cpu", "rss_delta_gib": rss})
        remember(json.loads((folder / "record.json").read_text()), folder)
    cal = load_calibration(resolve_hardware("cpu"), history=True)
    measured = {s.source.split(" ")[0]: s.measured_gib for s in cal.samples}
    assert measured == {"first": 0.5, "second": None}
    assert all(s.mfu for s in cal.samples)  # throughput still counts


def test_calibrate_from_works_without_torch(tmp_path):
    import subprocess
    import sys

    write_run(tmp_path / "runs", "lora", tokens_per_s=100.0)
    blocked = ("torch", "transformers", "peft", "trl", "lm_eval", "bitsandbytes", "accelerate", "pandas")
    code = (f"import sys\nfor m in {blocked!r}:\n    sys.modules[m] = None\n"
            "from tunewise.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "advise", "--model", CPU_MODEL, "--examples", "500",
                           "--calibrate-from", str(tmp_path / "runs"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["calibration"]["samples"][0]["method"] == "lora"


def test_a_run_set_aside_by_overwrite_is_not_read_from_a_folder_of_runs(tmp_path):
    from advisor.run_history import read_entries

    write_run(tmp_path, "lora")
    write_run(tmp_path, ".lora.previous")  # runners/_run_dir.py: the replaced run, until the new one completes
    entries, _ = read_entries([tmp_path], explicit=True)
    assert [e.run["name"] for e in entries] == ["lora"]
