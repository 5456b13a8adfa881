"""Shared pieces of the asset builders: seeds, the chat format, deterministic JSONL.

Determinism: every generator takes an explicit `random.Random(seed)`; JSONL is written with
`sort_keys=True`, `ensure_ascii=False` and "\\n" line ends, so the same seed gives the same
bytes on every machine and Python >= 3.11 (random.Random's algorithm is stable).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from tunewise.atomic import atomic_write_text

SEED = 1234  # the one seed every asset is built from (sub-seeds are derived from it)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS.values()]

# The Jinja chat template shipped in tokenizer_config.json.  `render_chat` below is the same
# format in plain Python (a test checks they agree).  Each turn ends with EOS so that
# generation stops after the assistant's answer; {% generation %} marks assistant text for
# trl's assistant_only_loss.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] + '</s>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '</s>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{%- endif %}"
)


def sub_seed(name: str, seed: int = SEED) -> int:
    """A stable per-generator seed (hash() is salted per process, so not used here)."""
    return seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def rng_for(name: str, seed: int = SEED) -> random.Random:
    return random.Random(sub_seed(name, seed))


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Render messages exactly as CHAT_TEMPLATE does."""
    out = [f"{ROLE_TOKENS[m['role']]}\n{m['content']}{EOS}\n" for m in messages]
    if add_generation_prompt:
        out.append(f"{ROLE_TOKENS['assistant']}\n")
    return "".join(out)


def chat_prompt(question: str) -> str:
    """A single user turn rendered up to the assistant's answer (the `prompt` of our files)."""
    return render_chat([{"role": "user", "content": question}], add_generation_prompt=True)


def jsonl_text(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, jsonl_text(rows))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def words(text: str) -> list[str]:
    """Lower-cased word tokens used by the overlap checks (punctuation dropped)."""
    cleaned = "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text)
    return cleaned.split()


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
