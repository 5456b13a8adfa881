"""Customer-support data for the fictional shop: train (two forms), held-out eval, ladder.

Train questions are a topic's `train` phrasings with a greeting/closing drawn from small
lists; the answer is always the topic's canonical sentence, so exact-match generation is
well defined.  Eval questions are the topics' `eval` phrasings, never used in training.

Overlap, concretely (checked here at generation time and again in tests/unit):
  * no eval question equals, contains or is contained in a training question, and
  * no eval question shares a word 8-gram (lower-cased, punctuation dropped) with any
    training prompt (domain or preference).
Answers are shared on purpose: they are the knowledge being learned.
"""

from __future__ import annotations

import random

from tunewise.assets.build.common import chat_prompt, ngrams, rng_for
from tunewise.assets.build.shop import TOPICS, Topic

PER_TOPIC = 55  # 36 topics -> 1,980 training examples
OPENERS = ("", "Hi, ", "Hello! ", "Good morning. ", "Hey there. ", "Quick question: ", "Hi team, ",
           "Sorry to bother you, ")
CLOSERS = ("", " Thanks!", " Thank you.", " Please help.", " Cheers.", " Thanks in advance.")
LADDER = (50, 500)  # plus "all"
OVERLAP_N = 8


def compose(opener: str, core: str, closer: str) -> str:
    """Join greeting + question + closing, lower-casing the question after a comma/colon."""
    if opener.endswith((", ", ": ")) and not core.startswith(("I ", "I'", "PP")):
        core = core[0].lower() + core[1:]
    return f"{opener}{core}{closer}"


def _train_questions(topic: Topic, rng: random.Random) -> list[str]:
    combos = [(o, c, s) for c in topic.train for o in OPENERS for s in CLOSERS]
    # Every core question appears at least once before any repeats with other greetings.
    first = [(OPENERS[0], c, CLOSERS[0]) for c in topic.train]
    rest = [x for x in combos if x not in first]
    picked = first + rng.sample(rest, PER_TOPIC - len(first))
    return [compose(*x) for x in picked]


def train_examples(seed: int | None = None) -> list[dict]:
    """[{topic, question, answer}] in a seeded shuffled order."""
    rng = rng_for("domain/train", *(() if seed is None else (seed,)))
    rows = [{"topic": t.key, "question": q, "answer": t.correct} for t in TOPICS for q in _train_questions(t, rng)]
    rng.shuffle(rows)
    return rows


def as_messages(row: dict) -> dict:
    return {"messages": [{"role": "user", "content": row["question"]},
                         {"role": "assistant", "content": row["answer"]}]}


def as_prompt_completion(row: dict) -> dict:
    return {"prompt": chat_prompt(row["question"]), "completion": row["answer"]}


def eval_examples(seed: int | None = None) -> list[dict]:
    """Held-out questions as multiple choice and exact match (see module docstring)."""
    rng = rng_for("domain/eval", *(() if seed is None else (seed,)))
    rows = []
    for topic in TOPICS:
        for question in topic.eval:
            choices = [topic.answer_with(v) for v in topic.values]
            rng.shuffle(choices)
            rows.append({
                "id": f"{topic.key}-{len(rows):03d}", "topic": topic.key, "question": question,
                "prompt": chat_prompt(question), "completion": topic.correct,
                "choices": choices, "answer": choices.index(topic.correct), "answer_text": topic.correct,
            })
    return rows


def ladder(train_rows: list[dict], size: int) -> list[dict]:
    """The first `size` examples taking topics in turn, so small cuts still cover every topic."""
    by_topic: dict[str, list[dict]] = {}
    for row in train_rows:
        by_topic.setdefault(row["topic"], []).append(row)
    out, i = [], 0
    while len(out) < size:
        for rows in by_topic.values():
            if i < len(rows) and len(out) < size:
                out.append(rows[i])
        i += 1
    return out


def overlap(train_texts: list[str], eval_texts: list[str], n: int = OVERLAP_N) -> list[str]:
    """Eval texts that overlap the training texts (definition in the module docstring)."""
    train_grams = set().union(*(ngrams(t, n) for t in train_texts))
    lowered = [t.lower() for t in train_texts]
    bad = []
    for text in eval_texts:
        low = text.lower()
        if ngrams(text, n) & train_grams or any(low in t or t in low for t in lowered):
            bad.append(text)
    return bad
