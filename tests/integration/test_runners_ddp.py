"""Same global batch, same loss: 2 DDP processes (gloo, CPU) and gradient accumulation vs one process;
bad launch combinations are one line before anything starts.

    .venv/bin/python -m pytest tests/integration/test_runners_ddp.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl

from runners import run_plan
from tunewise.methods import Method
from tunewise.plan import HardwareSpec
from tunewise.records import load_run_record

pytestmark = pytest.mark.slow

# Float sums over differently split batches differ in the last bits; the runs are otherwise
# the same computation, so 1e-4 relative is far below what a real divergence would show.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def single(tiny_model_dir, tmp_path_factory):
    train = write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", arithmetic_rows(32))
    out = tmp_path_factory.mktemp("runs")
    run_plan(make_plan(tiny_model_dir, Method.LORA, train, name="one", batch_size=4, max_steps=4), out)
    return train, out, [r["loss"] for r in metrics(out / "one")]


def test_two_processes_match_one_process(tiny_model_dir, single):
    train, out, expected = single
    plan = make_plan(tiny_model_dir, Method.LORA, train, name="two", batch_size=2, max_steps=4)
    record = run_plan(plan, out, num_processes=2, device="cpu")
    assert record.status == "completed" and record.hardware["count"] == 2
    losses = [r["loss"] for r in metrics(out / "two")]
    assert losses == pytest.approx(expected, rel=TOLERANCE)
    assert losses[-1] != pytest.approx(losses[0], rel=1e-3)  # it trained: the curve moved
    ranks = record.peak_memory.per_rank
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["rss_peak_gib"] > 0 and r["host"] for r in ranks)
    config = yaml.safe_load((out / "two" / "accelerate_config.yaml").read_text())
    assert config["num_processes"] == 2 and config["use_cpu"] is True and config["distributed_type"] == "MULTI_GPU"
    distributed = record.config["distributed"]  # planned, and what accelerate actually ran
    assert distributed["strategy"] == "ddp" and distributed["num_processes"] == 2
    assert distributed["accelerate_distributed_type"] == "MULTI_CPU"  # gloo DDP on CPU


def test_gradient_accumulation_matches_a_bigger_batch(tiny_model_dir, single):
    train, out, expected = single
    run_plan(make_plan(tiny_model_dir, Method.LORA, train, name="accum", batch_size=1, grad_accum=4, max_steps=4), out)
    assert [r["loss"] for r in metrics(out / "accum")] == pytest.approx(expected, rel=TOLERANCE)


# Both "machines" of the two-machine test share this host's cores: one thread each (accelerate
# would give each machine's single process every core).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunewise", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=False, env=ONE_THREAD)


@pytest.mark.parametrize(("settings", "flags", "words"), [
    ({"strategy": "ddp", "zero_stage": 3}, ["--num-processes", "2"], "zero_stage 3 with strategy ddp"),
    ({}, ["--num-processes", "4", "--num-machines", "2"], "--main-process-ip"),
    ({}, ["--num-processes", "0"], "--num-processes"),
])
def test_bad_launch_is_one_line_and_leaves_no_run_folder(tiny_model_dir, tmp_path, settings, flags, words):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    plan = make_plan(tiny_model_dir, Method.LORA, train, name="bad")
    plan = replace(plan, settings=plan.settings.replace(**settings))
    plan.write(tmp_path / "plan.yaml")
    proc = _cli("plan.yaml", "--device", "cpu", "--out", "runs", *flags, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs" / "bad").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_machines_on_one_host_share_a_run_folder(tiny_model_dir, tmp_path):
    """--num-machines 2: two `tunewise run`s (one process each) meet over 127.0.0.1; machine 0
    alone writes the record, machine 1 leaves nothing behind in the shared folder."""
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    make_plan(tiny_model_dir, Method.LORA, train, name="nodes", batch_size=2, max_steps=2).write(tmp_path / "p.yaml")
    flags = ["p.yaml", "--device", "cpu", "--out", "runs", "--num-processes", "2", "--num-machines", "2",
             "--main-process-ip", "127.0.0.1", "--main-process-port", str(_free_port())]
    second = subprocess.Popen([sys.executable, "-m", "tunewise", "run", *flags, "--machine-rank", "1"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    first = _cli(*flags, "--machine-rank", "0", cwd=tmp_path)
    out, err = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-1500:], err[-1500:])
    assert "machine 1 finished its part" in out
    record = load_run_record(tmp_path / "runs" / "nodes")
    assert record.status == "completed" and record.steps == 2
    assert record.config["distributed"]["num_machines"] == 2 and len(record.peak_memory.per_rank) == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["nodes"]  # no machine-1 leftovers


def test_a_plan_for_several_gpus_run_as_one_process_says_so(tiny_model_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    plan = make_plan(tiny_model_dir, Method.LORA, train, name="eight")
    replace(plan, hardware=HardwareSpec("a100-80gb", 8, 80.0)).write(tmp_path / "plan.yaml")
    proc = _cli("plan.yaml", "--resume", "--overwrite", cwd=tmp_path)  # stops right after the note
    assert proc.returncode == 2 and "the plan is for 8 GPUs" in proc.stderr and "--num-processes 8" in proc.stderr
