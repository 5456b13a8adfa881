"""Same global batch, same loss: 2 DDP processes (gloo, CPU) and gradient accumulation vs one process.

    .venv/bin/python -m pytest tests/integration/test_runners_ddp.py
"""

from __future__ import annotations

import pytest
import yaml
from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl

from runners import run_plan
from tunewise.methods import Method

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
    assert len(record.peak_memory.per_rank) == 2
    config = yaml.safe_load((out / "two" / "accelerate_config.yaml").read_text())
    assert config["num_processes"] == 2 and config["use_cpu"] is True


def test_gradient_accumulation_matches_a_bigger_batch(tiny_model_dir, single):
    train, out, expected = single
    run_plan(make_plan(tiny_model_dir, Method.LORA, train, name="accum", batch_size=1, grad_accum=4, max_steps=4), out)
    assert [r["loss"] for r in metrics(out / "accum")] == pytest.approx(expected, rel=TOLERANCE)
