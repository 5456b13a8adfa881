"""Prompt runner: k diverse demonstrations, chosen deterministically within the token budget.

    .venv/bin/python -m pytest tests/integration/test_runners_prompt.py
"""

from __future__ import annotations

import json

import pytest
from runner_kit import arithmetic_rows, chat_rows, make_plan, write_jsonl

from runners import run_plan
from runners.prompting import choose
from tunewise.methods import Method
from tunewise.records import load_prompt_config

pytestmark = pytest.mark.slow


def test_prompt_run_writes_a_reproducible_few_shot_config(tiny_model_dir, tmp_path):
    rows = arithmetic_rows(40, seed=1)
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    plan = make_plan(tiny_model_dir, Method.PROMPT, train, num_fewshot=4, seq_len=256)
    first = run_plan(plan, tmp_path / "a")
    run_plan(plan, tmp_path / "b")
    a, b = load_prompt_config(tmp_path / "a" / "prompt"), load_prompt_config(tmp_path / "b" / "prompt")
    assert first.status == "completed" and first.artifacts == {"prompt": "prompt.json"}
    assert a.demonstrations == b.demonstrations and a.k == 4
    for demo in a.demonstrations:  # each demonstration is the training row on its line
        assert {"prompt": demo["prompt"], "completion": demo["completion"]} == rows[demo["line"] - 1]
    assert len({d["line"] for d in a.demonstrations}) == 4
    assert a.prefix == "".join(d["prompt"] + d["completion"] + a.separator for d in a.demonstrations)
    assert a.prefix_tokens <= a.seq_len - a.reserved_tokens
    other = run_plan(_with_seed(plan, 7), tmp_path / "c")
    assert other.status == "completed"
    assert load_prompt_config(tmp_path / "c" / "prompt").demonstrations != a.demonstrations


def _with_seed(plan, seed):
    from dataclasses import replace

    return replace(plan, settings=plan.settings.replace(seed=seed))


def test_evaluator_reads_the_prefix(tiny_model_dir, tmp_path):
    from evals.variants import prompt_prefix

    train = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    run_plan(make_plan(tiny_model_dir, Method.PROMPT, train, num_fewshot=2, seq_len=256), tmp_path)
    path = tmp_path / "prompt" / "prompt.json"
    config = json.loads(path.read_text())
    assert config["schema"] == "tunewise/prompt/v1" and config["format"] == "messages"
    assert prompt_prefix(path) == config["prefix"] and config["k"] == 2
    assert [m["role"] for m in config["messages"]] == ["user", "assistant", "user", "assistant"]


def test_choice_is_diverse_and_respects_the_budget():
    demos = [{"prompt": "refund policy refund", "completion": "x"}] * 5 + [
        {"prompt": "opening hours today", "completion": "y"},
        {"prompt": "shipping to spain", "completion": "z"},
    ]
    sizes = [10] * 7
    picked = choose(demos, sizes, k=3, budget=100, seed=0)
    texts = {demos[i]["prompt"] for i in picked}
    assert len(texts) == 3, "near-duplicates were chosen over distinct examples"
    assert choose(demos, sizes, k=3, budget=25, seed=0).__len__() == 2  # only two fit
    assert choose(demos, sizes, k=3, budget=5, seed=0) == []
