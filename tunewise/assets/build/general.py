"""The general pretraining corpus of the tiny base model.

Every fact of `skills.all_facts()` appears REPS[task] times: once in the retention suite's
format, then each time in a surface form drawn at random: a "Question: ...\\nAnswer: ..." list (the retention suite's format), a
paragraph of plain statements, or a chat turn in the tokenizer's chat template (so the
base model can answer general questions in chat form too).  Facts are grouped into short
documents of 3-8 facts of one form and language; counting runs are added as extra
documents.  The domain (the fictional shop) is deliberately absent.
"""

from __future__ import annotations

import random

from tunewise.assets.build.common import render_chat, rng_for
from tunewise.assets.build.skills import Fact, all_facts

# Repetitions per fact.  Enough for a 1-5M parameter model to learn most facts in a few
# epochs on CPU, few enough that they are not over-learned (fine-tuning must be able to
# dent them, which is what the forgetting measurement needs).
REPS = {"tw_arith": 12, "tw_count": 10, "tw_compare": 6, "tw_facts": 12, "tw_zh": 10}
FORMS = ("qa", "statements", "chat")
FORM_WEIGHTS = (0.45, 0.35, 0.20)
COUNTING_RUNS = 200


def qa_text(question: str, answer: str, lang: str = "en") -> str:
    """One question in the retention suite's format (the suite's doc_to_text + answer)."""
    if lang == "zh":
        return f"问题：{question}\n答案：{answer}"
    return f"Question: {question}\nAnswer: {answer}"


def _render(form: str, facts: list[Fact], rng: random.Random) -> str:
    if form == "qa":
        return "\n\n".join(qa_text(f.question, f.answer, f.lang) for f in facts)
    if form == "statements":
        return "\n".join(rng.choice(f.statements) for f in facts)
    messages = []
    for f in facts[:3]:  # a chat is at most three exchanges
        reply = rng.choice(f.statements) if rng.random() < 0.7 else f.answer
        messages += [{"role": "user", "content": f.question}, {"role": "assistant", "content": reply}]
    return render_chat(messages).rstrip("\n")


def _counting_run(rng: random.Random) -> str:
    start = rng.randrange(0, 90)
    length = rng.randint(5, 12)
    return "Counting: " + ", ".join(str(n) for n in range(start, start + length)) + "."


def corpus_documents(seed: int | None = None) -> list[dict[str, str]]:
    """The corpus as [{"text": ...}], deterministic for a seed."""
    rng = rng_for("general", *(() if seed is None else (seed,)))
    buckets: dict[tuple[str, str], list[Fact]] = {}
    for fact in all_facts():
        for rep in range(REPS[fact.task]):
            # The first appearance is always in the suite's own format, so every suite item
            # is taught at least once as asked; the rest vary the surface form.
            form = "qa" if rep == 0 else rng.choices(FORMS, FORM_WEIGHTS)[0]
            buckets.setdefault((form, fact.lang), []).append(fact)
    docs = []
    for (form, _lang), facts in sorted(buckets.items()):
        rng.shuffle(facts)
        i = 0
        while i < len(facts):
            size = rng.randint(3, 8)
            docs.append(_render(form, facts[i : i + size], rng))
            i += size
    docs += [_counting_run(rng) for _ in range(COUNTING_RUNS)]
    rng.shuffle(docs)
    return [{"text": d} for d in docs]
