"""Step 2 of the demo: one plan per method on the bundled tiny model and data.

The settings are the demo's own, measured on the tiny model (1.2M parameters) with
`tunewise demo` itself, not the advisor's: the advisor's defaults are for billion-
parameter models (LoRA LR 2e-4, full 2e-5 from the QLoRA / Alpaca recipes), which move a
1M-parameter model too little in a few hundred steps.  What a tiny model needs:

- LoRA / QLoRA: a high learning rate (5e-3 at r=8); the adapter starts at zero (B = 0)
  and must learn a whole new domain in a few hundred steps.
- full: 5e-4, ~10x below LoRA (every weight moves; the usual full-vs-adapter ratio, see
  runners/_common.py default_learning_rate).
- DPO starts from the LoRA run (`init_from`): SFT then preference tuning, the usual
  pipeline (Rafailov et al. 2023, sec. 4: the reference is the SFT model).
- RLHF (only when asked): runners.rlhf.demo_plan and its DEMO_SETTINGS.
- One pass over the 1,980 examples is 124 steps at batch 16; `--quick` trains fewer
  steps and must still show a domain gain (tests/e2e/test_demo.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunewise.methods import Method

DEMO_METHODS = (Method.PROMPT, Method.LORA, Method.QLORA, Method.FULL, Method.DPO)

# Shared by every SFT/DPO run: batch 16 of at most 128 tokens (the data's p95 is 51),
# no dropout or gradient checkpointing (nothing to save on a 1M-parameter model), fp32 on CPU.
COMMON: dict[str, Any] = dict(
    batch_size=16, seq_len=128, lora_rank=8, lora_dropout=0.0, gradient_checkpointing=False,
    precision="fp32", warmup_ratio=0.05, lr_scheduler="cosine", logging_steps=10, num_fewshot=3,
)


@dataclass(frozen=True)
class Recipe:
    """Steps and learning rate of one method, for the full demo and for --quick."""

    steps: int
    learning_rate: float | None
    quick_steps: int
    quick_learning_rate: float | None
    extra: tuple[tuple[str, Any], ...] = ()

    def settings(self, quick: bool) -> dict[str, Any]:
        steps, lr = (self.quick_steps, self.quick_learning_rate) if quick else (self.steps, self.learning_rate)
        return {**COMMON, "max_steps": steps, "learning_rate": lr, **dict(self.extra)}


# Measured with the demo's own eval (paired 95% CIs, 144 held-out questions, base 0.21):
# LoRA 200 steps at 5e-3 -> domain +0.75; full 200 at 5e-4 -> +0.79; quick: LoRA/QLoRA 60
# at 1e-2 -> +0.43, full 60 at 1e-3 -> +0.58; DPO 60 at 1e-3 (beta 0.1) after the LoRA run
# -> preference pairs +0.11.  A quick run takes its learning rate higher to learn in fewer steps.
RECIPES: dict[Method, Recipe] = {
    Method.PROMPT: Recipe(steps=1, learning_rate=None, quick_steps=1, quick_learning_rate=None),
    Method.LORA: Recipe(steps=200, learning_rate=5e-3, quick_steps=60, quick_learning_rate=1e-2),
    Method.QLORA: Recipe(steps=200, learning_rate=5e-3, quick_steps=60, quick_learning_rate=1e-2),
    Method.FULL: Recipe(steps=200, learning_rate=5e-4, quick_steps=60, quick_learning_rate=1e-3),
    Method.DPO: Recipe(steps=60, learning_rate=1e-3, quick_steps=30, quick_learning_rate=1e-3,
                       extra=(("dpo_beta", 0.1),)),
}


@dataclass(frozen=True)
class DemoData:
    """The bundled files the demo reads (paths as strings, as plans store them)."""

    model: str
    domain_train: str
    domain_eval: str
    preference_train: str
    preference_eval: str
    ladder: dict[str, str]


def bundled() -> DemoData:
    from tunewise.assets import demo_data_path, tiny_model_path
    from tunewise.demo.ladder import LADDER

    return DemoData(
        model=str(tiny_model_path()),
        domain_train=str(demo_data_path("domain_train_messages.jsonl")),
        domain_eval=str(demo_data_path("domain_eval.jsonl")),
        preference_train=str(demo_data_path("preferences_train.jsonl")),
        preference_eval=str(demo_data_path("preferences_eval.jsonl")),
        ladder={name: str(demo_data_path(name)) for name in LADDER},
    )


def parse_methods(text: str) -> list[Method]:
    """'prompt,lora,dpo' -> methods in pipeline order; DPO needs LoRA (its SFT start) first."""
    from tunewise.errors import InputError

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    known = {m.value: m for m in Method}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InputError(f"unknown method {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}",
                         field="--methods")
    chosen = {known[n] for n in names}
    if Method.DPO in chosen:
        chosen.add(Method.LORA)  # DPO starts from the LoRA SFT run
    return [m for m in Method if m in chosen]


def demo_plan(method: Method, data: DemoData, *, quick: bool, after_lora: bool = False):
    """The plan the demo runs for `method` (run name = the method's name).

    `after_lora`: the demo's LoRA run exists; RLHF then starts from it instead of its own
    SFT step (DPO always does: parse_methods adds LoRA).
    """
    from tunewise.plan import DataSpec, Plan
    from tunewise.settings import TrainSettings

    if method is Method.RLHF:
        from runners.rlhf import demo_plan as rlhf_plan

        return rlhf_plan(data.model, data.preference_train, data.preference_eval,
                         init_from="lora" if after_lora else None)
    recipe = RECIPES[method]
    preference = method is Method.DPO
    spec = DataSpec(train=data.preference_train if preference else data.domain_train,
                    format="preference" if preference else "messages")
    reasons = [f"demo: {method.value} on the bundled tiny model "
               f"({'quick: ' if quick else ''}{recipe.settings(quick)['max_steps']} steps)"]
    return Plan(method=method, model=data.model, data=spec, settings=TrainSettings(**recipe.settings(quick)),
                name=method.value, init_from="lora" if preference else None, reasons=reasons)
