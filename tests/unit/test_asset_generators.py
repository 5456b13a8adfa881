"""Bundled-asset generators: deterministic, leak-free, and what the shipped files contain.

Run: .venv/bin/python -m pytest -q tests/unit/test_asset_generators.py
No torch: only the pure-Python generators and the shipped JSONL/YAML are read.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from evals import suites
from tunewise.assets import DEMO_DATA, demo_data_path
from tunewise.assets.build import domain, general, preferences, retention, shop
from tunewise.assets.build.common import SEED, chat_prompt, ngrams, render_chat
from tunewise.assets.build.datasets import data_files
from tunewise.data import load_dataset


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return data_files(SEED)


def rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_same_seed_same_bytes(generated):
    assert data_files(SEED) == generated


def test_other_seed_other_bytes(generated):
    other = data_files(SEED + 1)
    assert other["domain_train_messages.jsonl"] != generated["domain_train_messages.jsonl"]
    assert other["general_corpus.jsonl"] != generated["general_corpus.jsonl"]


def test_shipped_files_are_the_generated_ones(generated):
    """The files in the package are exactly what the generators produce from SEED."""
    assert set(generated) == set(DEMO_DATA)
    for name, text in generated.items():
        assert demo_data_path(name).read_text(encoding="utf-8") == text, name


def test_shipped_suite_is_the_generated_one():
    folder = suites.SUITES_DIR / suites.DEFAULT_SUITE
    for task, (test, dev) in retention.task_rows(SEED).items():
        assert rows((folder / "data" / f"{task}_test.jsonl").read_text(encoding="utf-8")) == test
        assert rows((folder / "data" / f"{task}_dev.jsonl").read_text(encoding="utf-8")) == dev
        assert (folder / f"{task}.yaml").read_text(encoding="utf-8") == retention.task_yaml(task)


def test_every_file_loads_with_tunewise_reader():
    expected = {"general_corpus.jsonl": "text", "domain_train_prompt_completion.jsonl": "prompt_completion",
                "domain_eval.jsonl": "prompt_completion", "preferences_train.jsonl": "preference",
                "preferences_eval.jsonl": "preference"}
    for name in DEMO_DATA:
        assert load_dataset(demo_data_path(name)).format == expected.get(name, "messages"), name


def test_domain_train_size_and_forms_agree(generated):
    messages = rows(generated["domain_train_messages.jsonl"])
    pc = rows(generated["domain_train_prompt_completion.jsonl"])
    assert 1000 <= len(messages) <= 3000
    assert len(pc) == len(messages)
    for m, p in zip(messages, pc, strict=True):
        assert render_chat(m["messages"][:1], add_generation_prompt=True) == p["prompt"]
        assert m["messages"][1]["content"] == p["completion"]


def test_ladder_sizes_and_coverage(generated):
    train = rows(generated["domain_train_messages.jsonl"])
    assert rows(generated["domain_all.jsonl"]) == train
    answers = {t.correct for t in shop.TOPICS}
    for size in (50, 500):
        cut = rows(generated[f"domain_{size}.jsonl"])
        assert len(cut) == size
        assert all(r in train for r in cut)
        assert {r["messages"][1]["content"] for r in cut} == answers  # every topic present


def eval_questions(generated) -> list[str]:
    return [r["question"] for r in rows(generated["domain_eval.jsonl"])]


def training_prompts(generated) -> list[str]:
    """Every user-side text a model is trained on (domain SFT and preference prompts)."""
    sft = [r["messages"][0]["content"] for r in rows(generated["domain_train_messages.jsonl"])]
    pref = [r["prompt"] for r in rows(generated["preferences_train.jsonl"])]
    return sft + pref


def test_no_eval_question_in_training(generated):
    train = "\n".join(training_prompts(generated)).lower()
    for question in eval_questions(generated):
        assert question.lower() not in train


def test_no_shared_8_gram_between_eval_and_training(generated):
    train_grams = set().union(*(ngrams(t, 8) for t in training_prompts(generated)))
    for question in eval_questions(generated):
        assert not ngrams(question, 8) & train_grams, question


def test_overlap_check_catches_a_leak():
    """The checker the generator relies on flags paraphrase-free copies and 8-gram reuse."""
    train = ["Hi, how many days do I have to return an item? Thanks!"]
    assert domain.overlap(train, ["How many days do I have to return an item?"])  # contained
    assert domain.overlap(train, ["so how many days do I have to return an item exactly"])  # 8-gram
    assert not domain.overlap(train, ["For how long after delivery will you accept a return?"])


def test_domain_eval_rows_are_multiple_choice_and_exact_match(generated):
    evals = rows(generated["domain_eval.jsonl"])
    assert len(evals) == 4 * len(shop.TOPICS)
    positions = set()
    for r in evals:
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert r["choices"][r["answer"]] == r["answer_text"] == r["completion"]
        assert r["prompt"] == chat_prompt(r["question"])
        positions.add(r["answer"])
    assert positions == {0, 1, 2, 3}  # the correct answer is not always in one slot


def test_domain_answers_are_learnable_from_training(generated):
    """Every eval answer is the canonical answer taught in training (the knowledge to learn)."""
    taught = {r["messages"][1]["content"] for r in rows(generated["domain_train_messages.jsonl"])}
    assert {r["answer_text"] for r in rows(generated["domain_eval.jsonl"])} <= taught


def test_general_corpus_never_mentions_the_shop(generated):
    corpus = generated["general_corpus.jsonl"].lower()
    for marker in ("pebble", "brightwater", "refund", "warranty", "my orders"):
        assert marker not in corpus


@pytest.mark.parametrize("split", ["train", "eval"])
def test_preference_pairs_differ(split):
    pairs = preferences.preference_pairs(split)
    assert pairs
    for p in pairs:
        assert p["chosen"].strip() and p["rejected"].strip() and p["chosen"] != p["rejected"]


def test_preferences_cover_refusals_and_split_cleanly():
    train, evals = preferences.preference_pairs("train"), preferences.preference_pairs("eval")
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in evals}
    lock = [p for p in train if "pick the lock" in p["prompt"]]
    assert lock and "locksmith" in lock[0]["chosen"] and "locksmith" not in lock[0]["rejected"]
    assert sum("I can't" in p["chosen"] for p in evals) >= 4


def test_retention_rows_are_valid_multiple_choice():
    for task, (test, dev) in retention.task_rows(SEED).items():
        assert len(test) >= 90 and len(dev) == retention.DEV_SIZE, task
        keys = {r["question"] for r in test}
        assert len(keys) == len(test) and not keys & {r["question"] for r in dev}, task
        for r in test + dev:
            assert len(set(r["choices"])) == len(r["choices"]) >= 2
            assert 0 <= r["answer"] < len(r["choices"])


def test_retention_answers_are_taught_in_the_corpus(generated):
    corpus = generated["general_corpus.jsonl"]
    for task, (test, _) in retention.task_rows(SEED).items():
        for r in test:
            lang = "zh" if task == "tw_zh" else "en"
            taught = general.qa_text(r["question"], r["choices"][r["answer"]], lang)
            assert json.dumps(taught, ensure_ascii=False)[1:-1] in corpus, (task, r["question"])


def test_corpus_renders_the_suite_format():
    text = general.qa_text("What is 3 + 4?", "7")
    assert text == "Question: What is 3 + 4?\nAnswer: 7"
    assert general.qa_text("3加4等于几？", "7", "zh") == "问题：3加4等于几？\n答案：7"


def test_suite_yaml_names_are_unique_and_prefixed():
    names = suites.suite_tasks(suites.DEFAULT_SUITE)
    assert sorted(names) == sorted(retention.TASKS)
    assert all(n.startswith("tw_") for n in names)
    for path in (suites.SUITES_DIR / suites.DEFAULT_SUITE).glob("*.yaml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert config["metadata"]["version"] == retention.VERSION
        if "task" in config and "group" not in config:
            assert config["fewshot_split"] == "dev" and config["test_split"] == "test"


def test_include_path_materialises_absolute_data_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(suites.CACHE_ENV, str(tmp_path))
    folder = suites.include_path(suites.DEFAULT_SUITE)
    assert folder.startswith(str(tmp_path))
    for task in suites.suite_tasks(suites.DEFAULT_SUITE):
        config = yaml.safe_load(open(f"{folder}/{task}.yaml", encoding="utf-8"))
        for path in config["dataset_kwargs"]["data_files"].values():
            assert path.startswith("/") and open(path, encoding="utf-8").readline()
    assert suites.include_path(suites.DEFAULT_SUITE) == folder  # cached, same content


def test_shipped_tokenizer_is_rebuilt_by_the_builder():
    """Same training text -> same vocabulary and merges as the tokenizer in the package."""
    from tokenizers import Tokenizer

    from tunewise.assets import DATA_DIR, MODEL_DIR
    from tunewise.assets.build.tokenizer import VOCAB_SIZE, tokenizer_texts, train_tokenizer

    fresh = json.loads(train_tokenizer(tokenizer_texts(DATA_DIR)).to_str())
    shipped = json.loads(Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json")).to_str())
    assert fresh["model"]["vocab"] == shipped["model"]["vocab"]
    assert fresh["model"]["merges"] == shipped["model"]["merges"]
    assert len(shipped["model"]["vocab"]) == VOCAB_SIZE


def test_unknown_names_are_rejected():
    with pytest.raises(KeyError):
        demo_data_path("nope.jsonl")
    with pytest.raises(KeyError):
        suites.suite_tasks("nope")


def test_generators_do_not_import_torch():
    code = ("import sys; from tunewise.assets.build.datasets import data_files; data_files(); "
            "import evals.suites; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
