"""The shipped tiny model, tokenizer and retention suite work offline and are what we claim.

Run: .venv/bin/python -m pytest -q tests/integration/test_tiny_model.py
(tests/conftest.py sets HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 before anything imports.)
Budget: under a minute on 2 CPU cores; the scoring test evaluates the first LIMIT items.
"""

from __future__ import annotations

import json
import os

import pytest

from evals.suites import DEFAULT_SUITE, include_path, suite_tasks
from tunewise.assets import demo_data_path, tiny_model_path
from tunewise.assets.build.common import EOS, ROLE_TOKENS, render_chat

LIMIT = 60  # items per task in the scoring test: CI half-width ~12 pp, enough for the floors
# Floors on the first LIMIT items, set 12-15 pp under the measured scores of the shipped
# model (see its README.md): fail => the model or the suite regressed.
FLOORS = {"tw_arith": 0.60, "tw_count": 0.70, "tw_compare": 0.85, "tw_facts": 0.75, "tw_zh": 0.70}
DOMAIN_CEILING = 0.45  # the base model must not know the shop (chance is 0.25)


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path())


@pytest.fixture(scope="module")
def model():
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return AutoModelForCausalLM.from_pretrained(tiny_model_path()).eval()


def test_runs_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("HF_DATASETS_OFFLINE") == "1"


def test_shipped_files_and_sizes():
    folder = tiny_model_path()
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "README.md"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)  # safetensors only
    assert (folder / "model.safetensors").stat().st_size <= 20 * 1024 * 1024
    assert "chat_template" in json.loads((folder / "tokenizer_config.json").read_text())


def test_model_is_a_small_llama(model):
    assert model.config.model_type == "llama"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000


def test_special_tokens(tok, model):
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", EOS)
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
    for role_token in ROLE_TOKENS.values():
        assert len(tok(role_token, add_special_tokens=False)["input_ids"]) == 1
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.config.vocab_size == len(tok)


def test_chat_template_is_the_documented_format(tok):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"},
                {"role": "assistant", "content": "2 + 2 = 4"}]
    assert tok.apply_chat_template(messages, tokenize=False) == render_chat(messages)
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == render_chat(messages[:2], add_generation_prompt=True)
    marked = tok.apply_chat_template(messages, return_assistant_tokens_mask=True, return_dict=True)
    answer = [t for t, m in zip(marked["input_ids"], marked["assistant_masks"], strict=True) if m]
    assert tok.decode(answer) == "2 + 2 = 4" + EOS  # assistant_only_loss sees answer + EOS


def test_prompt_completion_tokens_match_messages(tok):
    """SFT on either training form sees the same tokens (the eval prompt is the same prefix)."""
    messages = json.loads(demo_data_path("domain_train_messages.jsonl").read_text().splitlines()[0])
    pc = json.loads(demo_data_path("domain_train_prompt_completion.jsonl").read_text().splitlines()[0])
    chat = tok.apply_chat_template(messages["messages"], tokenize=False)
    assert chat == pc["prompt"] + pc["completion"] + EOS + "\n"
    prompt_ids = tok(pc["prompt"], add_special_tokens=False)["input_ids"]
    full_ids = tok(pc["prompt"] + pc["completion"], add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids  # the prompt is a token-prefix


def test_generates_and_stops_in_chat(tok, model):
    import torch

    batch = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                    add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=32, do_sample=False)
    new = out[0, batch["input_ids"].shape[1]:].tolist()
    assert tok.eos_token_id in new  # it ends its turn with EOS (generation_config stops there)
    assert tok.decode(new, skip_special_tokens=True).strip()


def test_generates_known_answers_in_the_suite_format(tok, model):
    import torch

    asked = {"What is the capital of France?": "Paris", "What is 2 + 3?": "5", "What colour is snow?": "white",
             "What sound does a cow make?": "moo"}
    for question, answer in asked.items():
        batch = tok(f"Question: {question}\nAnswer:", return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=4, do_sample=False)
        assert tok.decode(out[0, batch["input_ids"].shape[1]:]).split()[0] == answer, question


def test_suite_loads_with_lm_eval_offline():
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=include_path(DEFAULT_SUITE), include_defaults=False)
    names = suite_tasks(DEFAULT_SUITE)
    assert set(names) | {DEFAULT_SUITE} <= set(manager.all_tasks)
    tasks = get_task_dict(names, manager)
    for name in names:
        task = tasks[name]
        assert len(task.test_docs()) >= 90 and len(task.fewshot_docs()) == 5
        assert task.config.metadata["version"] == 1.0


@pytest.mark.slow
def test_base_model_knows_general_skills_not_the_shop(tok, model):
    from tunewise.assets.build.quality import measure

    scores = measure(tiny_model_path(), demo_data_path("domain_eval.jsonl"), model=model, limit=LIMIT, batch_size=64)
    low = {t: round(scores[t]["acc"], 3) for t, floor in FLOORS.items() if scores[t]["acc"] < floor}
    assert not low, f"retention tasks under their floors {FLOORS}: {low}"
    assert scores["tw_domain_mc"]["acc"] <= DOMAIN_CEILING
