"""SIGKILL a training run again and again; `tunewise run --resume` always finishes it.

One run folder, a chain of seeded faults: each trial starts `tunewise run` (the first
fresh, the rest with --resume) in a forked child process and SIGKILLs it either at a random
moment during training or while a checkpoint is half-written (after the weights and
optimizer state, before `trainer_state.json`, the file transformers writes last).  After
every kill: record.json parses (atomic writes), no artifact folder is half there, every
metrics line but the last parses, and a half-written checkpoint is never the one chosen
for resuming.  At the end a last --resume completes all planned steps, each step
logged once.  (`--resume` after the last kill runs in the same way, in a forked child.)

    .venv/bin/python -m pytest tests/integration/test_crash_safety.py
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl

from runners._common import last_complete_checkpoint
from tunewise.methods import Method

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SEED = 20261206
STEPS, SAVE_STEPS = 10, 2

# A zygote: imports torch, transformers and trl once, then forks one process per trial
# (each import takes ~10 s on a loaded 2-core machine).  Each forked child runs the real
# CLI, with Trainer._save_rng_state (called after the weights and the optimizer are on
# disk, before trainer_state.json) patched to SIGKILL the child while it writes
# checkpoint-<kill_at>.  Protocol: one JSON line in; the child's pid, then its wait
# status, out.
ZYGOTE = """
import json, os, signal, sys
import torch, transformers, trl, peft, runners.sft
from transformers import Trainer
from tunewise.cli import main

original = Trainer._save_rng_state
kill_at = None

def save_rng_state(self, output_dir):
    if kill_at and output_dir.rstrip("/").endswith(f"checkpoint-{kill_at}"):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, output_dir)

Trainer._save_rng_state = save_rng_state
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)  # the CLI's own output must not mix with the protocol on stdout
        kill_at = job["kill_at"]
        print("trial", job, file=sys.stderr, flush=True)
        try:
            code = main(job["argv"])
        except BaseException:
            code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


class Zygote:
    def __init__(self, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)

    def start(self, argv: list[str], kill_at: int | None) -> int:
        self.proc.stdin.write(json.dumps({"argv": argv, "kill_at": kill_at}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        return os.waitstatus_to_exitcode(int(self.proc.stdout.readline()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def faults(rng: random.Random) -> list[tuple[str, int, float]]:
    """The chain, three times: a kill while the next checkpoint is half-written (the first
    before any checkpoint is complete), then a kill at a random moment: 0-0.3 s after the
    resumed run logs its 1st-3rd step."""
    return [fault for _ in range(3)
            for fault in (("checkpoint", 0, 0.0), ("random", rng.randint(1, 3), rng.uniform(0.0, 0.3)))]


def resume_step(run_dir: Path) -> int:
    """The step a resumed run starts after (its last complete checkpoint's, else 0)."""
    found = last_complete_checkpoint(run_dir / "checkpoints")
    return int(found.name.split("-")[1]) if found else 0


def logged_step(metrics_file: Path) -> int:
    steps = [0]
    for line in metrics_file.read_text().splitlines() if metrics_file.exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:  # a line being written right now
            pass
    return max(steps)


def kill_during_training(pid: int, metrics_file: Path, after_step: int, delay: float) -> None:
    """SIGKILL `delay` seconds after the child has logged `after_step`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if logged_step(metrics_file) >= after_step:
            time.sleep(delay)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it finished first
                pass
            return
        time.sleep(0.01)


def assert_nothing_half_written(run_dir: Path) -> None:
    record = json.loads((run_dir / "record.json").read_text())  # parses: written atomically
    assert record["status"] in ("running", "completed")
    adapter = run_dir / "adapter"
    if adapter.exists():  # published by one rename: whole or absent
        assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
    for line in lines[:-1]:
        json.loads(line)


def test_repeated_sigkill_then_resume_completes(tiny_model_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(32))
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=STEPS, save_steps=SAVE_STEPS)
    plan_file = plan.write(tmp_path / "plan.yaml")
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "lora"
    kills = 0
    zygote = Zygote(tmp_path / "children.log")
    try:
        for index, (kind, steps, delay) in enumerate(faults(random.Random(SEED))):
            start = resume_step(run_dir)
            kill_at = start + SAVE_STEPS if kind == "checkpoint" else None
            argv = ["run", str(plan_file), "--out", str(out)] + (["--resume"] if index else [])
            pid = zygote.start(argv, kill_at)
            if kind == "random":
                kill_during_training(pid, run_dir / "metrics.jsonl", start + steps, delay)
            code = zygote.wait()
            if code == 0:  # finished before the kill landed: nothing left to resume
                break
            assert code == -signal.SIGKILL, (tmp_path / "children.log").read_text()[-2000:]
            kills += 1
            assert_nothing_half_written(run_dir)
            if kind == "checkpoint":
                half = run_dir / "checkpoints" / f"checkpoint-{kill_at}"
                assert half.is_dir() and not (half / "trainer_state.json").exists()
                found = last_complete_checkpoint(run_dir / "checkpoints")
                assert found is None or int(found.name.split("-")[1]) < kill_at  # never the half one
        if json.loads((run_dir / "record.json").read_text())["status"] != "completed":
            zygote.start(["run", str(plan_file), "--out", str(out), "--resume"], None)
            assert zygote.wait() == 0, (tmp_path / "children.log").read_text()[-2000:]
    finally:
        zygote.close()
    assert kills >= 5, "the faults must land (only the last random kill may miss a finished run)"
    final = json.loads((run_dir / "record.json").read_text())
    assert final["status"] == "completed" and final["steps"] == STEPS
    assert [row["step"] for row in metrics(run_dir)] == list(range(1, STEPS + 1))
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not (run_dir / "checkpoints").exists()  # dropped once the artifact is safe


def test_resume_trims_metrics_past_the_checkpoint_and_cut_off_lines(tmp_path):
    """Found by the chain above: a resume with no complete checkpoint kept the killed run's
    rows (steps 1, 2, 1, 2, ...), and a row cut off mid-write made the resume crash."""
    from runners._train import _trim_metrics

    path = tmp_path / "metrics.jsonl"
    rows = "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo'
    path.write_text(rows)
    _trim_metrics(path, str(tmp_path / "checkpoint-2"))
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    path.write_text(rows)
    _trim_metrics(path, None)  # --resume without a complete checkpoint: start over
    assert path.read_text() == ""
