"""Same seed, same numbers on CPU: the loss curve and the evaluation are reproducible.

Two LoRA runs of the tiny model with one seed log identical per-step losses and gradient
norms, and `tunewise eval` scores them identically, down to each example's
log-likelihoods (a second evaluation gives the same numbers again).  A third run with
another seed differs, so the test can tell.

    .venv/bin/python -m pytest tests/integration/test_determinism.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner_kit import arithmetic_rows, make_plan, metrics, write_jsonl

from runners import run_plan
from tunewise.cli import main
from tunewise.methods import Method

pytestmark = pytest.mark.slow
DOMAIN = [{"prompt": f"What is {i}+1? ", "choices": [f"{i}+1={i + 1}.", f"{i}+1={i + 2}."], "answer": 0}
          for i in range(8)]


def curve(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["loss"], r.get("grad_norm")) for r in metrics(run_dir)]


def evaluate(out: Path, domain: Path, *runs: Path) -> dict:
    code = main(["eval", *map(str, runs), "--domain", str(domain), "--retention", "none", "--examples", "0",
                 "--out", str(out)])
    assert code == 0
    return json.loads((out / "eval.json").read_text())


def scores(record: dict, variant: str) -> list[tuple]:
    [found] = [v for v in record["variants"] if v["name"] == variant]
    return [(s["task"], s["metric"], s["score"], s["stderr"], s["n"]) for s in found["scores"]]


def loglikelihoods(eval_dir: Path, variant: str) -> dict[str, list]:
    folder = eval_dir / "samples" / variant
    return {p.name: [json.loads(line).get("lls") for line in p.read_text().splitlines()]
            for p in sorted(folder.glob("*.jsonl"))}


def test_same_seed_same_loss_curve_and_eval_numbers(tiny_model_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(32))
    domain = write_jsonl(tmp_path / "held_out.jsonl", DOMAIN)
    out = tmp_path / "runs"
    for name, seed in (("a", 7), ("b", 7), ("other", 8)):
        run_plan(make_plan(tiny_model_dir, Method.LORA, train, name=name, seed=seed, max_steps=4, lora_dropout=0.1), out)

    assert curve(out / "a") == curve(out / "b")  # exact, not approximate
    assert len(curve(out / "a")) == 4
    assert [c[1] for c in curve(out / "a")] != [c[1] for c in curve(out / "other")]  # the seed matters

    both = evaluate(tmp_path / "eval", domain, out / "a", out / "b")
    assert scores(both, "a") == scores(both, "b")
    lls = loglikelihoods(tmp_path / "eval", "a")
    assert lls and lls == loglikelihoods(tmp_path / "eval", "b")
    assert lls != loglikelihoods(tmp_path / "eval", "base")  # trained: the adapter changed the model

    again = evaluate(tmp_path / "eval-again", domain, out / "a")
    assert scores(again, "a") == scores(both, "a")
    assert loglikelihoods(tmp_path / "eval-again", "a") == lls
