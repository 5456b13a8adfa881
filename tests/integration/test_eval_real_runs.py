"""`tunewise eval` on run folders made by the real runners (LoRA trained 2 steps, a prompt run)
with the bundled demo data: the artifact contracts between `run` and `eval` hold.

    .venv/bin/python -m pytest tests/integration/test_eval_real_runs.py
"""

from __future__ import annotations

import pytest

from evals.samples import read_rows
from tunewise.records import load_prompt_config

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model gains nothing from threads; on a busy machine idle OpenMP workers spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_real_lora_and_prompt_runs_evaluate_against_their_base(tmp_path, tiny_model_dir):
    from evals.evaluate import evaluate_runs
    from runners import run_plan
    from tunewise.assets import demo_data_path
    from tunewise.methods import Method
    from tunewise.plan import DataSpec, Plan
    from tunewise.settings import TrainSettings

    train = str(demo_data_path("domain_train_prompt_completion.jsonl"))
    settings = TrainSettings(max_steps=2, batch_size=4, seq_len=128, learning_rate=1e-3, warmup_ratio=0.0,
                             lr_scheduler="constant", num_fewshot=2)
    runs = [run_plan(Plan(method=m, model=str(tiny_model_dir), data=DataSpec(train=train), settings=settings),
                     tmp_path / "runs", device="cpu") for m in (Method.LORA, Method.PROMPT)]
    assert [r.status for r in runs] == ["completed", "completed"]
    import torch

    torch.set_num_threads(1)  # run_plan sets torch's thread count to every core; undo it for the eval
    record = evaluate_runs([tmp_path / "runs" / r.name for r in runs], domain=demo_data_path("domain_eval.jsonl"),
                           retention="none", out=tmp_path / "eval", limit=6, batch_size=4, device="cpu")
    assert [(v.name, v.method) for v in record.variants] == [("base", "base"), ("lora", "lora"), ("prompt", "prompt")]
    assert record.base_model == runs[0].base_model
    assert not [w for w in record.warnings if "unchanged" in w or "identical" in w]  # both really differ
    prefix = load_prompt_config(tmp_path / "runs" / "prompt" / "prompt.json").prefix
    assert prefix
    scores = {v.name: {s.task: s for s in v.scores} for v in record.variants}
    base_rows = read_rows(tmp_path / "eval" / scores["base"]["tw_domain_domain_eval_mc"].samples)
    prompt_rows = read_rows(tmp_path / "eval" / scores["prompt"]["tw_domain_domain_eval_mc"].samples)
    assert [p["prompt"] for p in prompt_rows] == [prefix + b["prompt"] for b in base_rows]
    assert {(c.run, c.task) for c in record.comparisons} == {
        (run, task) for run in ("lora", "prompt") for task in ("tw_domain_domain_eval_mc", "tw_domain_domain_eval_em")
    }
