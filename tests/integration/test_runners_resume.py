"""--resume: a run killed with SIGKILL after its first checkpoint finishes the planned steps.

    .venv/bin/python -m pytest tests/integration/test_runners_resume.py
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl

from runners import run_plan
from runners._common import last_complete_checkpoint
from tunewise.methods import Method

ROOT = Path(__file__).resolve().parents[2]

# Runs in a child process: train, and SIGKILL ourselves right after the first checkpoint
# is on disk (no sleeping, no timing: the kill is tied to the save event).
KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from runners import run_plan
from tunewise.plan import load_plan

class KillAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

run_plan(load_plan(sys.argv[1]), sys.argv[2], callbacks=[KillAfterFirstCheckpoint()])
"""


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_one(tiny_model_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(24))
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=6, save_steps=2)
    plan_file = plan.write(tmp_path / "plan.yaml")
    out = tmp_path / "runs"
    child = subprocess.run([sys.executable, "-c", KILLER, str(plan_file), str(out)], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    run_dir = out / "lora"
    assert json.loads((run_dir / "record.json").read_text())["status"] == "running"  # died mid-run
    assert last_complete_checkpoint(run_dir / "checkpoints").name == "checkpoint-2"
    (run_dir / "checkpoints" / "checkpoint-4").mkdir()  # a save cut off before trainer_state.json

    record = run_plan(plan, out, resume=True)
    assert record.status == "completed" and record.steps == record.planned_steps == 6
    assert record.extra["resumed_from"] == "checkpoint-2"
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]

    reference = run_plan(make_plan(tiny_model_dir, Method.LORA, train, max_steps=6, save_steps=2, name="straight"), out)
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in metrics(out / "straight")], abs=1e-6)
    assert reference.final_loss == pytest.approx(record.final_loss, abs=1e-6)


def test_half_written_checkpoints_are_skipped(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # cut off mid-write
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-4"
    assert last_complete_checkpoint(tmp_path / "missing") is None


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_records_interrupted_and_resumes(tiny_model_dir, tmp_path):
    import os

    from transformers import TrainerCallback

    from runners._common import RunInterrupted

    class SigtermAtStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before it kills a job

    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(24))
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=6)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted, match="--resume"):
        run_plan(plan, tmp_path, callbacks=[SigtermAtStep2()])
    run_dir = tmp_path / "lora"
    stopped = json.loads((run_dir / "record.json").read_text())
    assert stopped["status"] == "interrupted" and "SIGTERM" in stopped["error"]
    assert last_complete_checkpoint(run_dir / "checkpoints") is not None  # saved on the way out
    assert signal.getsignal(signal.SIGTERM) == before  # our handler is gone again
    record = run_plan(plan, tmp_path, resume=True)
    assert record.status == "completed" and record.steps == 6
