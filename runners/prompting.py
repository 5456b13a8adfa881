"""prompt: no training -- choose k demonstrations from the training set, write prompt.json.

The evaluator then scores the base model with the demonstrations prepended, like any
other run (schema and fields: `tunewise.records.PromptConfig`).

Choice (deterministic for a seed, diverse, within the context budget):

1. budget = seq_len - reserved, reserved = p95(prompt tokens) + p95(completion tokens)
   of the training set: room for the query and its answer after the demonstrations;
2. candidates = the first 256 examples of a seeded shuffle;
3. farthest-point selection: repeatedly add the candidate whose word set is farthest
   (Jaccard distance, maximised over its nearest chosen demonstration) from those already
   chosen and still fits the budget; ties go to the seeded order.  Diverse demonstrations
   cover more of the task than k near-duplicates (Liu et al. 2022, "What Makes Good
   In-Context Examples for GPT-3?", find that the choice of examples matters; spreading
   them out is the cheap, retrieval-free version).
"""

from __future__ import annotations

import random
import re
from typing import Any

from runners._common import RunContext, model_reference
from runners._data import read_training_rows
from runners._train import load_tokenizer
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.records import PromptConfig

POOL = 256
SEPARATOR = "\n\n"
SELECTION = "seeded shuffle, then farthest-point by word-set Jaccard distance within the token budget"


class PromptRunner:
    """Few-shot prompting; satisfies runners.Runner (prepare -> train (no-op) -> save)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.base_ref = model_reference(ctx.plan.model)
        self.config: PromptConfig | None = None

    def prepare(self) -> None:
        ctx = self.ctx
        s = ctx.settings
        tokenizer = load_tokenizer(self.base_ref)
        data = read_training_rows(ctx.plan.data.train, Method.PROMPT)
        if data.format == "messages" and not tokenizer.chat_template:
            raise InputError("messages data needs a tokenizer with a chat template to render demonstrations",
                             path=data.path, field="messages")
        demos = [_demonstration(row, data.format, tokenizer) for row in data.rows]
        lines = list(data.lines)
        count = _token_counter(tokenizer)
        prompt_tokens = count([d["prompt"] for d in demos])
        completion_tokens = count([d["completion"] for d in demos])
        reserved = _p95(prompt_tokens) + _p95(completion_tokens)
        sizes = count([d["prompt"] + d["completion"] + SEPARATOR for d in demos])
        budget = s.seq_len - reserved
        chosen = choose(demos, sizes, k=s.num_fewshot, budget=budget, seed=s.seed)
        picked = [{**demos[i], "line": lines[i]} for i in chosen]
        prefix = "".join(d["prompt"] + d["completion"] + SEPARATOR for d in picked)
        self.config = PromptConfig(
            base_model=self.base_ref,
            format=data.format,
            k=len(picked),
            requested_k=s.num_fewshot,
            seed=s.seed,
            demonstrations=[{k: d[k] for k in ("prompt", "completion", "line")} for d in picked],
            messages=[m for d in picked for m in d.get("messages", [])],
            separator=SEPARATOR,
            prefix=prefix,
            prefix_tokens=count([prefix])[0] if prefix else 0,
            seq_len=s.seq_len,
            reserved_tokens=reserved,
            selection=SELECTION,
            source=str(data.path),
        )
        if len(picked) < s.num_fewshot:
            ctx.notes.append(
                f"{len(picked)} of {s.num_fewshot} demonstrations fit seq_len={s.seq_len} "
                f"({reserved} tokens reserved for the query and its answer)"
            )
        ctx.record.config.update(data={"path": str(data.path), "format": data.format, "examples": len(data)},
                                 demonstration_lines=[d["line"] for d in picked], prefix_tokens=self.config.prefix_tokens)
        ctx.record.trainable_params = 0

    def train(self) -> None:
        """Prompting trains nothing."""

    def save(self) -> dict[str, str]:
        if self.ctx.runtime.is_main:
            self.config.write(self.ctx.run_dir / "prompt.json")
        return {"prompt": "prompt.json"}


def choose(demos: list[dict[str, Any]], sizes: list[int], *, k: int, budget: int, seed: int) -> list[int]:
    """Indices of up to k diverse demonstrations whose sizes sum to at most `budget`."""
    order = list(range(len(demos)))
    random.Random(seed).shuffle(order)
    pool = order[:POOL]
    words = {i: set(re.findall(r"\w+", (demos[i]["prompt"] + " " + demos[i]["completion"]).lower())) for i in pool}
    chosen: list[int] = []
    used = 0
    while len(chosen) < k:
        best, best_distance = None, -1.0
        for i in pool:
            if i in chosen or used + sizes[i] > budget:
                continue
            distance = min((_jaccard_distance(words[i], words[j]) for j in chosen), default=1.0)
            if distance > best_distance:  # strict: ties keep the seeded order
                best, best_distance = i, distance
        if best is None:
            break
        chosen.append(best)
        used += sizes[best]
    return chosen


def _demonstration(row: dict[str, Any], fmt: str, tokenizer) -> dict[str, Any]:
    """One example as {prompt, completion} strings (+ messages for chat data)."""
    if fmt == "messages":
        messages = row["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages) - 1)
        prompt = _strip_bos(tokenizer.apply_chat_template(messages[:last], tokenize=False, add_generation_prompt=True),
                            tokenizer)
        full = _strip_bos(tokenizer.apply_chat_template(messages[: last + 1], tokenize=False), tokenizer)
        completion = full[len(prompt):] if full.startswith(prompt) else messages[last]["content"]
        return {"prompt": prompt, "completion": completion, "messages": messages[: last + 1]}
    if fmt == "preference":  # the chosen answer is the one worth imitating
        if isinstance(row["prompt"], list) or isinstance(row["chosen"], list):
            prompt = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
            chosen = row["chosen"] if isinstance(row["chosen"], list) else [{"role": "assistant", "content": row["chosen"]}]
            return _demonstration({"messages": prompt + chosen}, "messages", tokenizer)
        return {"prompt": row["prompt"], "completion": row["chosen"]}
    if fmt == "text":
        return {"prompt": "", "completion": row["text"]}
    return {"prompt": row["prompt"], "completion": row["completion"]}


def _strip_bos(text: str, tokenizer) -> str:
    """Chat templates often start with the BOS text; several demonstrations must not repeat it."""
    bos = tokenizer.bos_token
    return text[len(bos):] if bos and text.startswith(bos) else text


def _token_counter(tokenizer):
    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    return count


def _p95(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0


def _jaccard_distance(a: set[str], b: set[str]) -> float:
    union = a | b
    return 1.0 - (len(a & b) / len(union)) if union else 0.0
