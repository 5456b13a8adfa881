"""Write every generated data file (demo data + retention suite) from one seed."""

from __future__ import annotations

from pathlib import Path

from tunewise.assets.build import domain, general, preferences, retention
from tunewise.assets.build.common import SEED, jsonl_text
from tunewise.atomic import atomic_write_text


def data_files(seed: int = SEED) -> dict[str, str]:
    """File name -> JSONL text for tunewise/assets/data/ (pure: nothing is written)."""
    train = domain.train_examples(seed)
    evals = domain.eval_examples(seed)
    pref_train = preferences.preference_pairs("train", seed)
    pref_eval = preferences.preference_pairs("eval", seed)
    check_no_overlap(train, evals, pref_train)
    files = {
        "general_corpus.jsonl": general.corpus_documents(seed),
        "domain_train_messages.jsonl": [domain.as_messages(r) for r in train],
        "domain_train_prompt_completion.jsonl": [domain.as_prompt_completion(r) for r in train],
        "domain_eval.jsonl": evals,
        "preferences_train.jsonl": pref_train,
        "preferences_eval.jsonl": pref_eval,
        "domain_all.jsonl": [domain.as_messages(r) for r in train],
    }
    for size in domain.LADDER:
        files[f"domain_{size}.jsonl"] = [domain.as_messages(r) for r in domain.ladder(train, size)]
    return {name: jsonl_text(rows) for name, rows in files.items()}


def check_no_overlap(train: list[dict], evals: list[dict], pref_train: list[dict]) -> None:
    """Refuse to write data whose eval questions leak into any training prompt."""
    train_texts = [r["question"] for r in train] + [p["prompt"] for p in pref_train]
    bad = domain.overlap(train_texts, [r["question"] for r in evals])
    if bad:
        raise ValueError(f"eval questions overlap the training data: {bad[:5]}")


def write_data(data_dir: Path, suite_dir: Path, seed: int = SEED) -> list[Path]:
    written = [atomic_write_text(data_dir / name, text) for name, text in data_files(seed).items()]
    return written + retention.write_suite(suite_dir, seed)
