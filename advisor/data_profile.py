"""What a training file holds, and whether it is enough for each method.

`profile_data(path)` reads the file leniently (tunewise.data.load_dataset(strict=False):
bad rows are collected with their line numbers, not raised) and reports:

- format and example count (valid rows; unique = valid minus exact duplicates)
- token lengths per example: p50 / p95 / max / mean / total, and how many exceed the
  planned sequence length.  Two ways, the profile says which it used:
    exact     the model's own `tokenizer.json` (the `tokenizers` library, no torch), when
              it is on disk (a model folder, or the local Hugging Face cache)
    estimate  ceil(UTF-8 bytes / 4), the usual rule of thumb for English text with BPE
              vocabularies of 32k-150k tokens (~4 characters per token); expect +-25%,
              more for code or non-Latin scripts
  Chat messages add MESSAGE_OVERHEAD tokens each for the template's role markers in both
  ways (Llama 3 and ChatML both spend 5: start marker, role, separator, end marker(s)).
  A preference pair's length is prompt + the longer of chosen and rejected.
- exact and near duplicates (advisor.dedup), empty and malformed rows with line numbers
- overlap between train and eval examples (exact, near, and identical inputs)
- a verdict per method on whether the data suffices (DATA_NEEDS below)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor import dedup
from tunewise.data import Dataset, Problem, load_dataset
from tunewise.errors import InputError, first_line
from tunewise.methods import Method

MESSAGE_OVERHEAD = 5
BYTES_PER_TOKEN = 4
SFT_FORMATS = ("prompt_completion", "messages", "text")

# (method, formats it trains on, marginal from, sufficient from, why) -- unique examples.
# The ~100 and ~10,000 boundaries are the policy's baseline (issue 2, "established
# guidance"); the DPO/RLHF ones are our reading of published recipes, stated as such.
DATA_NEEDS: tuple[tuple[Method, tuple[str, ...], int, int, str], ...] = (
    (Method.PROMPT, SFT_FORMATS + ("preference",), 1, 5,
     "few-shot needs a handful of demonstrations (5 by default); beyond ~100 examples training usually wins"),
    (Method.LORA, SFT_FORMATS, 50, 100,
     "adapters learn a task or format from ~100 examples up; fewer overfit"),
    (Method.QLORA, SFT_FORMATS, 50, 100,
     "as LoRA (same adapter, 4-bit base)"),
    (Method.FULL, SFT_FORMATS, 1_000, 10_000,
     "updating every weight pays off from ~10,000 examples; on less it overfits and forgets"),
    (Method.DPO, ("preference",), 100, 1_000,
     "hundreds of pairs shift tone or refusals; published DPO recipes use thousands"),
    (Method.RLHF, ("preference",), 1_000, 10_000,
     "the reward model needs many comparisons (InstructGPT: ~33k)"),
)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # sufficient | marginal | insufficient | wrong-format
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"verdict": self.verdict, "reason": self.reason}


@dataclass
class TokenStats:
    method: str  # exact | estimate
    how: str
    total: int
    mean: float
    p50: int
    p95: int
    max: int
    count: int
    seq_len: int | None = None
    over_seq_len: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("method", "how", "total", "mean", "p50", "p95", "max")}
        if self.seq_len is not None:
            out.update(seq_len=self.seq_len, over_seq_len=self.over_seq_len,
                       over_seq_len_fraction=round(self.over_seq_len / max(1, self.count), 4))
        return out


@dataclass
class Overlap:
    eval_path: str
    eval_format: str
    eval_examples: int
    exact: list[int]  # eval lines identical to some train example
    near: list[tuple[int, int, float]]  # (eval line, train line, jaccard)
    same_input: list[int]  # eval lines whose prompt/input appears verbatim in train
    problems: list[Problem] = field(default_factory=list)  # bad rows in the eval file

    def to_dict(self) -> dict[str, Any]:
        return {"eval_path": self.eval_path, "eval_format": self.eval_format,
                "eval_examples": self.eval_examples,
                "eval_bad_rows": [{"line": p.line, "field": p.field, "message": p.message} for p in self.problems[:50]],
                "exact": len(self.exact),
                "near": len(self.near), "same_input": len(self.same_input),
                "exact_lines": self.exact[:20], "same_input_lines": self.same_input[:20],
                "near_pairs": [list(p) for p in self.near[:20]]}


@dataclass
class DataProfile:
    path: str
    format: str
    rows: int  # valid rows
    lengths: list[int]  # tokens per valid row (not serialised)
    tokens: TokenStats | None
    exact_duplicates: list[list[int]]  # groups of line numbers
    near_duplicates: list[tuple[int, int, float]]  # (earlier line, later line, jaccard)
    near_checked: int
    problems: list[Problem]
    overlap: Overlap | None = None
    verdicts: dict[Method, Verdict] = field(default_factory=dict)

    @property
    def duplicate_rows(self) -> int:
        return sum(len(g) - 1 for g in self.exact_duplicates)

    @property
    def examples(self) -> int:
        """Unique valid examples: what the method verdicts count."""
        return self.rows - self.duplicate_rows

    @property
    def empty_rows(self) -> list[Problem]:
        return [p for p in self.problems if p.message == "empty"]

    @property
    def malformed_rows(self) -> list[Problem]:
        return [p for p in self.problems if p.message != "empty"]

    def warnings(self) -> list[str]:
        return _warnings(self)

    def mean_tokens(self, seq_len: int | None = None) -> float:
        """Mean tokens per example, each truncated at seq_len when given (cached: the
        policy asks once per estimate)."""
        if not self.lengths:
            return 0.0
        cache = self.__dict__.setdefault("_mean_cache", {})
        if seq_len not in cache:
            cap = seq_len or max(self.lengths)
            cache[seq_len] = sum(min(n, cap) for n in self.lengths) / len(self.lengths)
        return cache[seq_len]

    def set_seq_len(self, seq_len: int) -> None:
        """Compare lengths against the planned sequence length (the policy calls this)."""
        if self.tokens is not None:
            self.tokens.seq_len = seq_len
            self.tokens.over_seq_len = sum(1 for n in self.lengths if n > seq_len)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "rows": self.rows,
            "examples": self.examples,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "duplicates": {"exact": self.duplicate_rows, "exact_groups": self.exact_duplicates[:20],
                           "near": len(self.near_duplicates),
                           "near_pairs": [list(p) for p in self.near_duplicates[:20]],
                           "near_checked_rows": self.near_checked},
            "problems": {"empty": len(self.empty_rows), "malformed": len(self.malformed_rows),
                         "rows": [{"line": p.line, "field": p.field, "message": p.message}
                                  for p in self.problems[:50]]},
            "overlap": self.overlap.to_dict() if self.overlap else None,
            "verdicts": {m.value: v.to_dict() for m, v in self.verdicts.items()},
            "warnings": self.warnings(),
        }


def profile_data(path: str | Path, *, eval_path: str | Path | None = None, seq_len: int | None = None,
                 tokenizer_path: str | Path | None = None) -> DataProfile:
    """Profile a training file (and optionally its eval file); see the module docstring."""
    data = load_dataset(path, strict=False)
    counter = TokenCounter(tokenizer_path)
    lengths = counter.lengths(data)
    keys = [dedup.normalise(example_text(r, data.format)) for r in data.rows]
    groups = dedup.exact_groups(keys)
    later_copies = {i for g in groups for i in g[1:]}
    near = dedup.near_pairs(keys, skip=later_copies)
    line = data.lines
    profile = DataProfile(
        path=str(path), format=data.format, rows=len(data.rows), lengths=lengths,
        tokens=_stats(lengths, counter) if lengths else None,
        exact_duplicates=[[line[i] for i in g] for g in groups],
        near_duplicates=[(line[a], line[b], j) for a, b, j in near],
        near_checked=min(len(keys), dedup.MAX_NEAR_ROWS), problems=list(data.problems),
    )
    if seq_len:
        profile.set_seq_len(seq_len)
    if eval_path is not None:
        profile.overlap = _overlap(data, keys, load_dataset(eval_path, strict=False))
    profile.verdicts = data_verdicts(profile)
    return profile


def data_verdicts(profile: DataProfile) -> dict[Method, Verdict]:
    """Per method: is there enough data of the right shape?  Thresholds in DATA_NEEDS."""
    n = profile.examples
    out = {}
    for method, formats, marginal, sufficient, why in DATA_NEEDS:
        if profile.format not in formats:
            needs = " or ".join(formats)
            out[method] = Verdict("wrong-format", f"{method.value} trains on {needs} data; found {profile.format}")
        elif n >= sufficient:
            out[method] = Verdict("sufficient", f"{n:,} unique examples >= {sufficient:,}: {why}")
        elif n >= marginal:
            out[method] = Verdict("marginal", f"{n:,} unique examples, below {sufficient:,}: {why}")
        else:
            out[method] = Verdict("insufficient", f"{n:,} unique examples < {marginal:,}: {why}")
    return out


def example_text(row: dict[str, Any], fmt: str) -> str:
    """All the text of one example (for duplicates and overlap)."""
    return "\n".join(text for text, _ in _sequences(row, fmt))


def example_input(row: dict[str, Any], fmt: str) -> str:
    """The part of an example the model is given (prompt or all turns before the last)."""
    if fmt == "messages":
        return _render(row["messages"][:-1])[0]
    if fmt in ("prompt_completion", "preference"):
        prompt = row.get("prompt", "")
        return _render(prompt)[0] if isinstance(prompt, list) else prompt
    return row.get("text", "")


def _sequences(row: dict[str, Any], fmt: str) -> list[tuple[str, int]]:
    """(text, chat messages) of each sequence trained on; a preference pair has two."""
    if fmt == "messages":
        return [_render(row["messages"])]
    if fmt == "prompt_completion":
        return [(row["prompt"] + row["completion"], 0)]
    if fmt == "text":
        return [(row["text"], 0)]
    prompt_text, prompt_msgs = _render(row["prompt"]) if isinstance(row.get("prompt"), list) \
        else (row.get("prompt", ""), 0)
    out = []
    for key in ("chosen", "rejected"):
        text, msgs = _render(row[key]) if isinstance(row[key], list) else (row[key], 0)
        out.append((prompt_text + "\n" + text, prompt_msgs + msgs))
    return out


def _render(messages: list[dict[str, str]]) -> tuple[str, int]:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages), len(messages)


class TokenCounter:
    """Counts tokens with the model's tokenizer.json when given, else estimates from bytes."""

    def __init__(self, tokenizer_path: str | Path | None = None) -> None:
        self._tokenizer = None
        self.method = "estimate"
        self.how = (f"ceil(UTF-8 bytes / {BYTES_PER_TOKEN}) (rule of thumb, +-25% for English) "
                    f"+ {MESSAGE_OVERHEAD} per chat message")
        if tokenizer_path is not None:
            self._tokenizer = load_tokenizer_file(tokenizer_path)
            self.method = "exact"
            self.how = f"{tokenizer_path} (+ {MESSAGE_OVERHEAD} per chat message for template markers)"

    def count(self, texts: list[str]) -> list[int]:
        if self._tokenizer is None:
            return [math.ceil(len(t.encode("utf-8")) / BYTES_PER_TOKEN) for t in texts]
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=True)]

    def lengths(self, data: Dataset) -> list[int]:
        """Tokens per row: the longest of its sequences, template markers included."""
        seqs = [_sequences(row, data.format) for row in data.rows]
        flat = [text for s in seqs for text, _ in s]
        counts = iter(self.count(flat))
        return [max(next(counts) + MESSAGE_OVERHEAD * msgs for _, msgs in s) for s in seqs]


def load_tokenizer_file(path: str | Path):
    """A tokenizer.json (--tokenizer, or one found next to the model), or one line naming the
    file: the `tokenizers` library raises a bare Exception ("No such file or directory (os
    error 2)", "Model missing") that names neither the file nor what is wrong with it."""
    from tokenizers import Tokenizer  # Rust tokenizers: no torch, loads in milliseconds

    path = Path(path)
    if not path.is_file():
        raise InputError("tokenizer file not found" if not path.exists() else "expected a tokenizer.json file",
                         path=path, field="tokenizer")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises bare Exception for every problem
        raise InputError(f"not a tokenizer.json the tokenizers library can read: {first_line(exc)}",
                         path=path, field="tokenizer") from None


def problem_line(path: str, problem: Problem) -> str:
    """`file:line field 'x': message`, the same shape as tunewise.errors.InputError."""
    where = f"{path}:{problem.line}" + (f" field '{problem.field}'" if problem.field else "")
    return f"{where}: {problem.message}"


def _percentile(ordered: list[int], q: float) -> int:
    """Nearest-rank percentile of a sorted list (the smallest value >= q of the data)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _stats(lengths: list[int], counter: TokenCounter) -> TokenStats:
    ordered = sorted(lengths)
    return TokenStats(method=counter.method, how=counter.how, total=sum(ordered),
                      mean=round(sum(ordered) / len(ordered), 1), p50=_percentile(ordered, 0.5),
                      p95=_percentile(ordered, 0.95), max=ordered[-1], count=len(ordered))


def _overlap(train: Dataset, train_keys: list[str], held_out: Dataset) -> Overlap:
    """Eval examples that also appear (exactly, nearly, or by their input) in the train data."""
    keys = set(train_keys)
    inputs = {dedup.normalise(example_input(r, train.format)) for r in train.rows}
    inputs.discard("")
    index = dedup.LshIndex()
    for i, key in enumerate(train_keys[: dedup.MAX_NEAR_ROWS]):
        index.add(i, dedup.shingles(key))
    exact, near, same_input = [], [], []
    for row, line in zip(held_out.rows, held_out.lines, strict=True):
        key = dedup.normalise(example_text(row, held_out.format))
        if key in keys:
            exact.append(line)
        else:
            hits = index.query(dedup.shingles(key))
            if hits:
                near.append((line, train.lines[hits[0][0]], round(hits[0][1], 3)))
        if dedup.normalise(example_input(row, held_out.format)) in inputs:
            same_input.append(line)
    return Overlap(str(held_out.path), held_out.format, len(held_out.rows), exact, near, same_input,
                   list(held_out.problems))


def _warnings(p: DataProfile) -> list[str]:
    out = []
    if p.problems:
        out.append(f"{len(p.problems)} bad row(s) skipped ({len(p.empty_rows)} empty, "
                   f"{len(p.malformed_rows)} malformed), first: {problem_line(p.path, p.problems[0])}")
    if p.duplicate_rows:
        out.append(f"{p.duplicate_rows} exact duplicate row(s); first group at lines {p.exact_duplicates[0]}")
    if p.near_duplicates:
        a, b, j = p.near_duplicates[0]
        out.append(f"{len(p.near_duplicates)} near-duplicate row(s) (Jaccard >= {dedup.NEAR_JACCARD}); "
                   f"first: lines {a} and {b} ({j})")
    if p.near_checked < p.rows:
        out.append(f"near duplicates checked in the first {p.near_checked:,} of {p.rows:,} rows")
    o = p.overlap
    if o and o.problems:
        out.append(f"{len(o.problems)} bad row(s) in the eval data, first: {problem_line(o.eval_path, o.problems[0])}")
    if o and (o.exact or o.near or o.same_input):
        out.append(f"train/eval overlap: {len(o.exact)} identical, {len(o.near)} near-identical, "
                   f"{len(o.same_input)} same input, of {o.eval_examples} eval examples -- eval scores "
                   "will overstate the gain")
    if p.tokens is not None and p.tokens.seq_len and p.tokens.over_seq_len:
        out.append(f"{p.tokens.over_seq_len} example(s) longer than seq_len {p.tokens.seq_len} will be truncated")
    return out
