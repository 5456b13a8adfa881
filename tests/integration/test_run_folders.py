"""Run folders: --overwrite keeps the old run until the new one completes and replaces only
tunewise runs; a run that failed before training does not block its corrected rerun;
--resume refuses other inputs or settings.

    .venv/bin/python -m pytest tests/integration/test_run_folders.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from runner_kit import arithmetic_rows, make_plan, write_jsonl

from runners import run_plan
from runners._common import RunInterrupted
from tunewise.cli import cli
from tunewise.errors import InputError, RunFailedError
from tunewise.methods import Method
from tunewise.plan import Plan

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_run(*args: str) -> tuple[int, list[str]]:
    """`tunewise run ARGS` in process: its exit code and its output lines."""
    result = CliRunner().invoke(cli, ["run", *map(str, args)])
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "record.json").read_text())["status"]


def sigterm_at(step: int):
    """A callback that sends this process SIGTERM once `step` is done (a scheduler's stop)."""
    from transformers import TrainerCallback

    class Sigterm(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                os.kill(os.getpid(), signal.SIGTERM)

    return Sigterm()


@pytest.fixture()
def completed(tiny_model_dir, tmp_path):
    """A completed 2-step LoRA run in tmp_path/runs/lora, and its training file."""
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(16))
    run_plan(make_plan(tiny_model_dir, Method.LORA, train, max_steps=2), tmp_path / "runs")
    return tmp_path / "runs" / "lora", train


def test_overwrite_that_fails_or_is_interrupted_keeps_the_old_run(tiny_model_dir, completed):
    run_dir, train = completed
    before = snapshot(run_dir)
    bad_targets = make_plan(tiny_model_dir, Method.LORA, train, max_steps=2, lora_targets="nope")
    with pytest.raises(RunFailedError) as failed:
        run_plan(bad_targets, run_dir.parent, overwrite=True)
    assert snapshot(run_dir) == before  # adapter/, metrics.jsonl and the completed record, as they were
    attempt = run_dir.with_name(".lora.failed")
    assert f"previous run is back in {run_dir}" in str(failed.value)
    assert str(attempt / "error.log") in str(failed.value) and (attempt / "error.log").is_file()

    with pytest.raises(InputError, match="seq_len"):  # an input error found once training is being set up
        run_plan(make_plan(tiny_model_dir, Method.LORA, train, seq_len=1), run_dir.parent, overwrite=True)
    assert snapshot(run_dir) == before

    longer = make_plan(tiny_model_dir, Method.LORA, train, max_steps=4)
    with pytest.raises(RunInterrupted) as stopped:
        run_plan(longer, run_dir.parent, overwrite=True, callbacks=[sigterm_at(1)])
    assert snapshot(run_dir) == before and "--resume" not in str(stopped.value)

    record = run_plan(longer, run_dir.parent, overwrite=True)
    assert record.status == "completed" and record.steps == 4 and status(run_dir) == "completed"
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["lora"]  # old run and failed attempts gone


KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
from transformers import TrainerCallback
from runners import run_plan
from tunewise.plan import load_plan

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

run_plan(load_plan(sys.argv[1]), sys.argv[2], overwrite=True, callbacks=[Kill()])
"""


def test_overwrite_killed_midway_loses_nothing(tiny_model_dir, completed, tmp_path):
    run_dir, train = completed
    before = snapshot(run_dir)
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=4, save_steps=2)
    child = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, str(plan.write(tmp_path / "p.yaml")),
                            str(run_dir.parent)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    previous = run_dir.with_name(".lora.previous")
    assert snapshot(previous) == before and status(run_dir) == "running"  # old run aside, attempt in place
    with pytest.raises(InputError, match=r"kept in .*\.lora\.previous"):  # the refusal says where it is
        run_plan(plan, run_dir.parent)

    with pytest.raises(RunFailedError):  # another --overwrite that fails: the old run, not the attempt, returns
        run_plan(make_plan(tiny_model_dir, Method.LORA, train, lora_targets="nope"), run_dir.parent, overwrite=True)
    assert snapshot(run_dir) == before and not previous.exists()

    run_dir.rename(previous)  # killed between setting the old run aside and creating the new folder
    with pytest.raises(InputError, match="already exists"):
        run_plan(plan, run_dir.parent)
    assert snapshot(run_dir) == before and not previous.exists()


def test_overwrite_replaces_only_tunewise_runs(tiny_model_dir, completed, tmp_path):
    run_dir, train = completed
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=1)
    mine = tmp_path / "mine" / "lora"
    mine.mkdir(parents=True)
    (mine / "record.json").write_text("notes\n")
    (mine / "thesis.tex").write_text("x\n")
    with pytest.raises(InputError, match="record.json is not a tunewise run record"):
        run_plan(plan, mine.parent, overwrite=True)
    (mine / "record.json").write_bytes((run_dir / "record.json").read_bytes())  # a real record, a foreign file
    code, lines = cli_run("--method", "lora", "--model", tiny_model_dir, "--data", train, "--out", mine.parent,
                          "--max-steps", "1", "--overwrite")
    assert code == 2 and len(lines) == 1 and str(mine) in lines[0] and "'thesis.tex'" in lines[0]
    assert (mine / "thesis.tex").read_text() == "x\n"
    assert sorted(p.name for p in mine.parent.iterdir()) == ["lora"]


def test_run_that_failed_before_training_does_not_block_the_rerun(tiny_model_dir, tmp_path):
    out = tmp_path / "runs"
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(16))
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=1)
    broken = {"no data": (Plan(method=Method.LORA, model=plan.model, settings=plan.settings), False),
              "init_from on lora": (make_plan(tiny_model_dir, Method.LORA, train, init_from=str(out / "x")), False),
              "fp16 on CPU": (make_plan(tiny_model_dir, Method.LORA, train, precision="fp16"), True),
              "no such model": (make_plan(tmp_path / "no-such-model", Method.LORA, train), False)}
    for why, (bad, forced) in broken.items():
        with pytest.raises(InputError):
            run_plan(bad, out, device="cpu", precision_forced=forced)
        assert status(out / "lora") == "failed", why
    assert run_plan(plan, out).status == "completed"

    trained = json.loads((out / "lora" / "record.json").read_text())
    trained.update(status="failed", error="loss became nan")  # failed after training: progress is kept
    (out / "lora" / "record.json").write_text(json.dumps(trained))
    with pytest.raises(InputError, match="already exists"):
        run_plan(plan, out)
    assert (out / "lora" / "adapter").is_dir()


def test_resume_refuses_other_method_data_or_settings(tiny_model_dir, tmp_path):
    out, run_dir = tmp_path / "runs", tmp_path / "runs" / "lora"
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(16))
    other = write_jsonl(tmp_path / "other.jsonl", arithmetic_rows(16, seed=1))
    plan = make_plan(tiny_model_dir, Method.LORA, train, max_steps=4)
    with pytest.raises(RunInterrupted):
        run_plan(plan, out, callbacks=[sigterm_at(1)])  # stops after step 2
    before = snapshot(run_dir)
    changes = {"'method'": make_plan(tiny_model_dir, Method.FULL, train, max_steps=4, name="lora"),
               "'data.train'": make_plan(tiny_model_dir, Method.LORA, other, max_steps=4),
               "'settings.max_steps'": make_plan(tiny_model_dir, Method.LORA, train, max_steps=6),
               "'settings.learning_rate'": make_plan(tiny_model_dir, Method.LORA, train, max_steps=4,
                                                     learning_rate=1e-3)}
    code, lines = cli_run("--method", "full", "--model", tiny_model_dir, "--data", train, "--out", out,
                          "--name", "lora", "--resume")
    assert code == 2 and len(lines) == 1 and "field 'method'" in lines[0]
    for field, changed in changes.items():
        with pytest.raises(InputError, match=field):
            run_plan(changed, out, resume=True)
    train.write_text(train.read_text() + train.read_text().splitlines()[0] + "\n")  # same path, edited
    with pytest.raises(InputError, match="edited"):
        run_plan(plan, out, resume=True)
    assert snapshot(run_dir) == before  # every refusal came before anything was written
    write_jsonl(train, arithmetic_rows(16))
    moved = train.rename(tmp_path / "moved.jsonl")  # same content elsewhere, and a logging change: fine
    record = run_plan(make_plan(tiny_model_dir, Method.LORA, moved, max_steps=4, logging_steps=2), out, resume=True)
    assert record.status == "completed" and record.steps == 4 and record.extra["resumed_from"] == "checkpoint-2"
    assert record.method == "lora" and record.extra["inputs"]["train"]["path"] == str(moved.resolve())
