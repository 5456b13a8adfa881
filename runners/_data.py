"""User data -> `datasets.Dataset` rows in the shapes trl trains on, with the loss mask chosen.

Loss masks (what the model is trained to produce):

- prompt/completion: the completion only (trl `completion_only_loss`).
- messages, chat template with `{% generation %}` markers (or one trl can patch with them):
  every assistant turn (trl `assistant_only_loss`).
- messages, template without markers: each conversation becomes a conversational
  prompt/completion pair split at its last assistant turn, so completion-only loss still
  applies (trl renders both halves with the tokenizer's chat template).
- text: every token.

Filters, each counted in the run record: conversations without an assistant turn, and
examples whose prompt alone fills `seq_len` (no completion token would survive
truncation).  Every example longer than `seq_len` is a bad input, not a silent truncation.

Replay (`--replay r`): general examples are mixed in so that they make up a fraction r of
the training set: n_general = round(n_domain * r / (1 - r)), drawn with a seeded RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.data import Dataset as Rows
from tunewise.data import load_dataset
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

SFT_FORMATS = ("prompt_completion", "messages", "text")


@dataclass
class Prepared:
    """Rows ready for a trl trainer, and what was decided on the way."""

    rows: list[dict[str, Any]]
    loss: str  # completion_only | assistant_only | last_turn_completion | full_sequence | preference
    report: dict[str, Any] = field(default_factory=dict)

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_list(self.rows)


def read_training_rows(path: str | None, method: Method) -> Rows:
    """Read and validate the training file for `method` (errors name file, line, field)."""
    if not path:
        raise InputError("no training data: pass --data or set data.train in the plan", field="data.train")
    if method in (Method.DPO, Method.RLHF):
        return load_dataset(path, expect="preference")
    if method is Method.PROMPT:
        return load_dataset(path)
    return load_dataset(path, expect=SFT_FORMATS)


def read_general_rows(path: str | None) -> Rows:
    """Replay data: the user's general file, else the general corpus bundled with tunewise."""
    if not path:
        try:
            from tunewise.assets import demo_data_path

            path = str(demo_data_path("general_corpus.jsonl"))
        except (ImportError, FileNotFoundError, InputError):
            raise InputError("--replay needs general data: set data.general in the plan", field="data.general") from None
    return load_dataset(path, expect=SFT_FORMATS)


def prepare_sft(data: Rows, tokenizer, settings: TrainSettings, general: Rows | None = None) -> Prepared:
    """Shape SFT rows, choose the loss mask, check lengths and mix in replay data."""
    report: dict[str, Any] = {"path": str(data.path), "format": data.format, "examples": len(data)}
    rows = [dict(r) for r in data.rows]
    if data.format == "prompt_completion":
        loss = "completion_only"
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    elif data.format == "text":
        loss = "full_sequence"
        rows = [{"text": r["text"]} for r in rows]
    else:
        rows, loss = _chat_rows(rows, tokenizer, data.path, report)
    rows = _check_lengths(rows, tokenizer, settings, data.path, report)
    if settings.replay > 0:
        if general is None:
            raise InputError("--replay needs general data (data.general)", field="data.general")
        rows = rows + _replay_rows(general, len(rows), settings, rows[0], report)
    report["used"] = len(rows)
    report["loss"] = loss
    return Prepared(rows, loss, report)


def prepare_preference(data: Rows, tokenizer, settings: TrainSettings) -> Prepared:
    """Preference pairs, with string/message-list halves made consistent for trl."""
    report: dict[str, Any] = {"path": str(data.path), "format": data.format, "examples": len(data)}
    rows = [_consistent_pair(r) for r in data.rows]
    if isinstance(rows[0]["prompt"], list) and not tokenizer.chat_template:
        raise InputError("conversational preference data needs a tokenizer with a chat template", path=data.path)
    rows = _check_lengths(rows, tokenizer, settings, data.path, report)
    report["used"] = len(rows)
    report["loss"] = "preference"
    return Prepared(rows, "preference", report)


def _chat_rows(rows, tokenizer, path, report) -> tuple[list[dict], str]:
    if not tokenizer.chat_template:
        raise InputError(
            "the model's tokenizer has no chat template, which messages data needs; "
            "use prompt/completion data or a model with a chat template",
            path=path,
            field="messages",
        )
    kept = [r for r in rows if any(m["role"] == "assistant" for m in r["messages"])]
    report["dropped_no_assistant_turn"] = len(rows) - len(kept)
    if not kept:
        raise InputError("no example left after filtering: no conversation has an assistant turn", path=path,
                         field="messages")
    if _assistant_masks_available(tokenizer):
        return [{"messages": r["messages"]} for r in kept], "assistant_only"
    report["note"] = ("chat template has no {% generation %} markers: each conversation trains on its last "
                      "assistant turn (completion-only loss)")
    pairs = []
    for r in kept:
        last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
        pairs.append({"prompt": r["messages"][:last], "completion": [r["messages"][last]]})
    return pairs, "last_turn_completion"


def _assistant_masks_available(tokenizer) -> bool:
    """Whether trl can build assistant masks: markers in the template, or a template trl patches."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        return get_training_chat_template(tokenizer) is not None
    except ValueError:  # trl has no training variant of this template
        return False


def _consistent_pair(row: dict[str, Any]) -> dict[str, Any]:
    """trl needs prompt, chosen and rejected all strings or all message lists."""
    out = {k: row[k] for k in ("prompt", "chosen", "rejected")}
    if any(isinstance(out[k], list) for k in out):
        if isinstance(out["prompt"], str):
            out["prompt"] = [{"role": "user", "content": out["prompt"]}]
        for key in ("chosen", "rejected"):
            if isinstance(out[key], str):
                out[key] = [{"role": "assistant", "content": out[key]}]
    return out


# ----------------------------------------------------------------------------- lengths


def token_lengths(rows: list[dict[str, Any]], tokenizer) -> list[tuple[int, int]]:
    """(prompt tokens, total tokens) per row, rendered the way trl will render it."""
    prompts, totals = [], []
    for r in rows:
        if "messages" in r:
            first = next(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            prompts.append(_render(tokenizer, r["messages"][:first], True) if first else "")
            totals.append(_render(tokenizer, r["messages"], False))
        elif "chosen" in r:
            longer = max(r["chosen"], r["rejected"], key=lambda x: len(str(x)))
            prompts.append(_render(tokenizer, r["prompt"], True))
            totals.append(_render(tokenizer, _join(r["prompt"], longer), False))
        elif "prompt" in r:
            prompts.append(_render(tokenizer, r["prompt"], True))
            totals.append(_render(tokenizer, _join(r["prompt"], r["completion"]), False))
        else:
            prompts.append("")
            totals.append(r["text"])
    count = _counter(tokenizer)
    return list(zip(count(prompts), count(totals), strict=True))


def _join(prompt, completion):
    return prompt + completion  # str + str, or message list + message list


def _render(tokenizer, value, generation_prompt: bool) -> str:
    if isinstance(value, str):
        return value
    return tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=generation_prompt)


def _counter(tokenizer):
    def count(texts: list[str]) -> list[int]:
        out = []
        for start in range(0, len(texts), 1024):  # batches keep memory flat on large files
            batch = texts[start : start + 1024]
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            out.extend(len(x) if text else 0 for x, text in zip(ids, batch, strict=True))
        return out

    return count


def _check_lengths(rows, tokenizer, settings: TrainSettings, path: Path, report) -> list[dict]:
    limit = settings.seq_len
    lengths = token_lengths(rows, tokenizer)
    report["tokens_mean"] = round(sum(t for _, t in lengths) / max(1, len(lengths)), 1)
    report["tokens_max"] = max((t for _, t in lengths), default=0)  # the longest batch sets the peak
    if not settings.packing and all(total > limit for _, total in lengths):
        shortest = min(total for _, total in lengths)
        raise InputError(
            f"every example is longer than seq_len={limit} tokens (shortest: {shortest}); "
            "raise --seq-len or shorten the examples",
            path=path,
            field="seq_len",
        )
    kept = [r for r, (p, _) in zip(rows, lengths, strict=True) if p < limit]
    report["dropped_prompt_fills_seq_len"] = len(rows) - len(kept)
    report["truncated"] = sum(1 for p, t in lengths if p < limit < t)
    if not kept:
        raise InputError(f"no example left after filtering: every prompt fills seq_len={limit}", path=path,
                         field="seq_len")
    return kept


# ----------------------------------------------------------------------------- replay


def _replay_rows(general: Rows, n_domain: int, settings: TrainSettings, like: dict, report) -> list[dict]:
    """General examples in the same shape as the domain rows (`like`), seeded."""
    r = settings.replay
    n = round(n_domain * r / (1 - r))
    pool = [_as_shape(row, general.format, like, general.path) for row in general.rows]
    rng = random.Random(settings.seed)
    if n <= len(pool):
        picked = rng.sample(pool, n)
    else:  # a small general corpus is cycled rather than silently under-mixed
        picked = [pool[i % len(pool)] for i in range(n)]
        rng.shuffle(picked)
    report["replay"] = {"fraction": r, "general_examples": n, "source": str(general.path),
                        "general_pool": len(pool)}
    return picked


def _as_shape(row: dict, fmt: str, like: dict, path: Path) -> dict:
    """Convert one general row into the training rows' shape."""
    text = row.get("text")
    if fmt == "prompt_completion":
        text = row["prompt"] + row["completion"]
    if fmt == "messages":
        text = "\n".join(m["content"] for m in row["messages"])
    if fmt == "preference":
        raise InputError("replay data must be text, prompt/completion or messages, not preference pairs", path=path)
    if "text" in like:
        return {"text": text}
    if "messages" in like:
        if fmt == "messages":
            return {"messages": row["messages"]}
        return {"messages": [{"role": "user", "content": row.get("prompt", "")},
                             {"role": "assistant", "content": row.get("completion", text)}]}
    if isinstance(like["prompt"], list):  # conversational prompt/completion
        return {"prompt": [{"role": "user", "content": row.get("prompt", "")}],
                "completion": [{"role": "assistant", "content": row.get("completion", text)}]}
    if fmt == "prompt_completion":
        return {"prompt": row["prompt"], "completion": row["completion"]}
    return {"prompt": "", "completion": text}  # plain text: learn all of it
