"""Step 1 of the demo: the advisor on the data-size ladder and on real models and GPUs.

Every row is a real `advisor.advise.advise` call (no torch); nothing here decides the
answer.  The bundled ladder (domain_50 / domain_500 / domain_all, 50 / 500 / 1,980
examples) is advised for the tiny model on this CPU and for Llama-3.1-8B on an
A100-80GB (the catalog has its config; tokens are estimated without its tokenizer).
The bundled data stops at 1,980 examples, below the policy's ~10,000 threshold for full
fine-tuning, so the large-data rung is a planned size (`--examples 50000`) with a budget.

Each row keeps its advice JSON (`advice/<key>.json`) and plan (`advice/<key>.plan.yaml`).
Local run history is off (`history=False`) so the same inputs give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.atomic import atomic_write_json

LADDER = ("domain_50.jsonl", "domain_500.jsonl", "domain_all.jsonl")
REAL_LADDER_MODEL, REAL_LADDER_GPU = "meta-llama/Llama-3.1-8B", "a100-80gb"


@dataclass(frozen=True)
class Example:
    """One advisor question: a row of the demo's table."""

    key: str  # file stem under advice/
    label: str  # what the row shows, in words
    request: dict[str, Any]  # AdviceRequest fields
    expect: str | None = None  # the ladder's textbook answer (shown next to the advisor's)


@dataclass
class Row:
    example: Example
    method: str
    rule: str
    reason: str
    memory_gib: float | None
    time_hours: float | None
    cost_usd: float | None

    @property
    def as_expected(self) -> bool | None:
        """None for rows without a textbook answer; LoRA and QLoRA both count as "an adapter"."""
        expect = self.example.expect
        if expect is None:
            return None
        return self.method in expect.split("/")


def examples(tiny_model: str, data: dict[str, str]) -> list[Example]:
    """The ladder on the tiny model and on a real model, then real models on real GPUs."""
    rows = []
    expected = {"domain_50.jsonl": "prompt", "domain_500.jsonl": "lora/qlora", "domain_all.jsonl": "lora/qlora"}
    for name in LADDER:
        stem = name.removesuffix(".jsonl")
        rows.append(Example(f"tiny-{stem}", f"tiny model, {stem}, this CPU",
                            dict(model=tiny_model, gpu="cpu", data=data[name]), expected[name]))
    for name in LADDER:
        stem = name.removesuffix(".jsonl")
        rows.append(Example(f"llama8b-{stem}", f"Llama-3.1-8B, {stem}, 1 x {REAL_LADDER_GPU}",
                            dict(model=REAL_LADDER_MODEL, gpu=REAL_LADDER_GPU, data=data[name]), expected[name]))
    rows.append(Example(
        "llama8b-50k-budget", "Llama-3.1-8B, 50,000 x 600 tokens, 8 x a100-80gb, $500",
        dict(model=REAL_LADDER_MODEL, gpu="a100-80gb", gpus=8, examples=50_000, tokens_per_example=600,
             budget_usd=500.0), "full"))
    real = (
        ("llama8b-rtx4090", "Llama-3.1-8B, 5,000 x 600 tokens, 1 x rtx-4090", "meta-llama/Llama-3.1-8B", "rtx-4090"),
        ("llama70b-a100", "Llama-3.1-70B, 5,000 x 600 tokens, 1 x a100-80gb", "meta-llama/Llama-3.1-70B", "a100-80gb"),
        ("qwen7b-t4", "Qwen2.5-7B, 5,000 x 600 tokens, 1 x t4", "Qwen/Qwen2.5-7B", "t4"),
    )
    for key, label, model, gpu in real:
        rows.append(Example(key, label, dict(model=model, gpu=gpu, examples=5_000, tokens_per_example=600)))
    return rows


def run_ladder(out_dir: Path, tiny_model: str, data: dict[str, str], log=lambda _msg: None) -> list[Row]:
    """Advise every example; write advice/<key>.json and advice/<key>.plan.yaml; return the rows."""
    from advisor.advise import AdviceRequest, advise

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for example in examples(tiny_model, data):
        log(f"advise: {example.label}")
        advice = advise(AdviceRequest(**example.request, history=False))
        advice.write_plan(out_dir / f"{example.key}.plan.yaml")
        body = advice.to_dict()
        atomic_write_json(out_dir / f"{example.key}.json", body)
        chosen = next(c for c in body["candidates"] if c["method"] == advice.method.value)
        rows.append(Row(example, advice.method.value, advice.rule, advice.reasons[0],
                        chosen["memory_gib"]["total"], chosen.get("time_hours"), chosen.get("cost_usd")))
    return rows


def render(rows: list[Row]) -> str:
    """The compact table printed by `tunewise demo`: question, answer, its cost, and the rule."""
    width = max([len("question"), *(len(r.example.label) for r in rows)])
    head = f"{'question':<{width}} {'advice':<7} {'GiB':>6} {'hours':>7} {'$':>7}  rule"
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = "" if r.as_expected in (None, True) else f"  (textbook: {r.example.expect})"
        lines.append(f"{r.example.label:<{width}} {r.method:<7} {_num(r.memory_gib, '.1f'):>6} "
                     f"{_hours(r.time_hours):>7} {_num(r.cost_usd, ',.2f'):>7}  {r.rule}{mark}")
    return "\n".join(lines)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _hours(value: float | None) -> str:
    if not value:  # None, or 0 for prompting (nothing to train)
        return "-"
    return "<0.01" if value < 0.01 else f"{value:.2f}"
