"""Reading a user's held-out evaluation data into normalised items.

Accepted row shapes (JSONL, JSON, CSV or Parquet, read with `tunewise.data.iter_rows`):

    multiple choice   {"prompt"|"question"|"messages": ..., "choices": [str, ...], "answer": int | str}
    exact match       {"prompt"|"question"|"messages": ..., "answer_text" | "completion": str}
                      or {"messages": [..., {"role": "assistant", "content": target}]}
    preference        {"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}

A row may carry both a multiple-choice and an exact-match target (the bundled demo data
does); then both task kinds are generated.  The shape is decided by the first row and
enforced on every row, so a missing field is reported with its file, line and field.

The query (the text the model conditions on) is `prompt` when present, else `question`,
else the messages up to the final assistant turn rendered by `render` (the base
tokenizer's chat template, so the eval sees the same tokens training saw).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.data import iter_rows
from tunewise.errors import InputError

Render = Callable[[list[dict[str, str]]], str]  # messages -> prompt text (generation prompt added)
KINDS = ("multiple_choice", "exact_match", "preference")


@dataclass
class EvalItems:
    """Normalised items of one held-out file, per task kind."""

    path: Path
    multiple_choice: list[dict[str, Any]] = field(default_factory=list)  # query, choices, gold
    exact_match: list[dict[str, Any]] = field(default_factory=list)  # query, target
    preference: list[dict[str, Any]] = field(default_factory=list)  # query, choices=[chosen, rejected], gold=0
    lines: list[int] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [k for k in KINDS if getattr(self, k)]


def plain_render(messages: list[dict[str, str]]) -> str:
    """Fallback renderer when the tokenizer has no chat template: `role: content` lines."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def content_render(messages: list[dict[str, str]]) -> str:
    """With --chat-template, lm-eval wraps each prompt in the chat template itself: the turns'
    contents are joined into that one user turn (earlier turns become plain text)."""
    return "\n\n".join(m["content"] for m in messages)


def read_eval_items(path: str | Path, *, render: Render = plain_render, preference: bool = False) -> EvalItems:
    """Read and validate every row of `path` (see the module docstring for the shapes).

    preference=True demands the preference shape (the `--preference` file).
    """
    path = Path(path)
    items = EvalItems(path=path)
    kinds: list[str] | None = None
    target_key = ""
    for line, row in iter_rows(path):
        try:
            if kinds is None:
                kinds, target_key = _row_kinds(row, preference), _target_key(row)
            for kind in kinds:
                parse = _PARSERS[kind]
                item = parse(row, render, target_key) if kind == "exact_match" else parse(row, render)
                getattr(items, kind).append(item)
        except InputError as exc:
            raise InputError(exc.message, path=path, line=line, field=exc.field) from None
        items.lines.append(line)
    if kinds is None:
        raise InputError("no examples: the file is empty", path=path)
    return items


def _row_kinds(row: dict[str, Any], preference: bool) -> list[str]:
    if preference or ("chosen" in row or "rejected" in row):
        if "chosen" not in row:
            raise InputError("missing (preference data needs prompt, chosen, rejected)", field="chosen")
        return ["preference"]
    kinds = []
    if "choices" in row:
        kinds.append("multiple_choice")
    if _has_text_target(row):
        kinds.append("exact_match")
    if not kinds:
        keys = ", ".join(sorted(row)) or "none"
        raise InputError(
            f"no target (keys: {keys}); held-out data needs choices+answer (multiple choice), "
            "answer_text or completion (exact match), or messages ending with an assistant turn",
            field="choices",
        )
    return kinds


def _has_text_target(row: dict[str, Any]) -> bool:
    if "answer_text" in row or "completion" in row:
        return True
    messages = row.get("messages")
    return isinstance(messages, list) and bool(messages) and isinstance(messages[-1], dict) \
        and messages[-1].get("role") == "assistant"


def _target_key(row: dict[str, Any]) -> str:
    """Where exact-match targets come from, fixed by the first row for the whole file."""
    return next((k for k in ("answer_text", "completion") if k in row), "messages")


def _query(row: dict[str, Any], render: Render) -> str:
    for key in ("prompt", "question"):
        if key in row:
            return _string(row, key, allow_empty=key == "prompt")
    if "messages" in row:
        messages = _messages(row["messages"], "messages")
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if not messages:
            raise InputError("needs at least one turn before the final assistant answer", field="messages")
        return render(messages)
    raise InputError("missing (need prompt, question or messages)", field="prompt")


def _multiple_choice(row: dict[str, Any], render: Render) -> dict[str, Any]:
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        raise InputError("expected a list of at least 2 answer strings", field="choices")
    for i, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            raise InputError("expected a non-empty string", field=f"choices[{i}]")
    if len(set(choices)) != len(choices):
        raise InputError("choices are not unique", field="choices")
    if "answer" not in row:
        raise InputError("missing (index into choices, or the correct choice's text)", field="answer")
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int | str):
        raise InputError(f"expected an index or a choice string, got {type(answer).__name__}", field="answer")
    if isinstance(answer, str):
        if answer not in choices:
            raise InputError(f"{answer!r} is not one of the choices", field="answer")
        answer = choices.index(answer)
    if not 0 <= answer < len(choices):
        raise InputError(f"index {answer} out of range for {len(choices)} choices", field="answer")
    return {"query": _query(row, render), "choices": list(choices), "gold": answer}


def _exact_match(row: dict[str, Any], render: Render, target_key: str) -> dict[str, Any]:
    if target_key != "messages":
        if target_key not in row:
            raise InputError("missing", field=target_key)
        target = _string(row, target_key)
    else:
        messages = _messages(row.get("messages"), "messages")
        if messages[-1]["role"] != "assistant":
            raise InputError("last message must be the assistant's answer", field=f"messages[{len(messages) - 1}].role")
        target = messages[-1]["content"]
        if not target.strip():
            raise InputError("final assistant answer is empty", field=f"messages[{len(messages) - 1}].content")
    return {"query": _query(row, render), "target": target.strip()}


def _preference(row: dict[str, Any], render: Render) -> dict[str, Any]:
    if "prompt" not in row:
        raise InputError("missing", field="prompt")
    prompt = row["prompt"]
    query = render(_messages(prompt, "prompt")) if isinstance(prompt, list) else _string(row, "prompt", True)
    chosen, rejected = (_response(row, key) for key in ("chosen", "rejected"))
    if chosen == rejected:
        raise InputError("chosen and rejected are identical", field="rejected")
    return {"query": query, "choices": [chosen, rejected], "gold": 0}


def _response(row: dict[str, Any], key: str) -> str:
    """A preference response: a string, or a message list whose last turn is the assistant's."""
    if key not in row:
        raise InputError("missing", field=key)
    value = row[key]
    if isinstance(value, list):
        messages = _messages(value, key)
        if messages[-1]["role"] != "assistant":
            raise InputError("last message must be the assistant's", field=f"{key}[{len(messages) - 1}].role")
        value = messages[-1]["content"]
    elif not isinstance(value, str):
        raise InputError(f"expected a string or messages, got {type(value).__name__}", field=key)
    if not value.strip():
        raise InputError("empty", field=key)
    return value


_PARSERS = {"multiple_choice": _multiple_choice, "exact_match": _exact_match, "preference": _preference}


def _string(row: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", field=key)
    if not allow_empty and not value.strip():
        raise InputError("empty", field=key)
    return value


def _messages(value: Any, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InputError("expected a non-empty list of {role, content} messages", field=key)
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise InputError("expected {role: system|user|assistant, content}", field=f"{key}[{i}].role")
        if not isinstance(msg.get("content"), str):
            raise InputError("content must be a string", field=f"{key}[{i}].content")
    return [{"role": m["role"], "content": m["content"]} for m in value]
