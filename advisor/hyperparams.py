"""Training settings for one method, each derived by the first rule that applies to it.

An ordered table, read top to bottom: for every setting the first rule whose predicate
holds sets the value, and the reason is kept next to it (style anchors, practice 5:
"derive the rest, and show the derivation").  Values the user passed as flags come
first and win (rule `override`).  Some rules ask the estimator (batch size, gradient
checkpointing, ZeRO stage): those are computed, not guessed.

Sources for the constants:
  LoRA LR 2e-4, 1e-4 above ~20B; paged 8-bit AdamW; all linear layers as targets:
      Dettmers et al. 2023, "QLoRA", sec. 4 and appendix B.
  alpha = 2r, all modules, LoRA LR ~10x full FT's: Biderman et al. 2024, "LoRA Learns Less
      and Forgets Less" (reference/eval_notes.md sec. 2.1, 2.4).
  Lower LR forgets less but needs more steps; replay of general data breaks the trade-off:
      eval_notes.md sec. 2.3-2.4 (CT0 1% rehearsal; Marek et al. 2026).  5% replay is our
      starting point with a margin over the 1% anchors; sweep it.
  DPO beta 0.1: Rafailov et al. 2023 and trl's DPOConfig default.  DPO LR: Zephyr's full-weight
      5e-7 (Tunstall et al. 2023) x ~10 for an adapter (Biderman et al. 2024) = 5e-6.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisor.context import HEADROOM, Derivation, Situation
from advisor.scaleout import OFFLOAD_WHY, SHARDING_WHY
from tunewise.methods import Method
from tunewise.settings import STAGE_STRATEGY, TrainSettings, sharding_conflict

ALL = tuple(Method)
TRAINING = tuple(m for m in Method if m.trains)
ADAPTERS = (Method.LORA, Method.QLORA)
# DPO and RLHF train a LoRA adapter too: the estimator assumes it (the reference model is
# the base with the adapter switched off), so they get the adapter settings.
PEFT = ADAPTERS + (Method.DPO, Method.RLHF)
FULL_WEIGHT = (Method.FULL, Method.DPO, Method.RLHF)
GLOBAL_BATCH = 16  # sequences per optimizer step (QLoRA paper's batch for <= 13B models)
BATCH_CHOICES = (16, 8, 4, 2, 1)
ROOMY_BATCH = 4  # turn checkpointing off only if this micro-batch still fits without it
SEQ_MULTIPLE = 128
REPLAY_FRACTION = 0.05


@dataclass(frozen=True)
class SettingRule:
    field: str
    name: str
    when: Callable[[Situation, Method, dict], bool]
    value: Callable[[Situation, Method, dict], Any]
    reason: Callable[[Situation, Method, dict, Any], str]
    methods: tuple[Method, ...] = TRAINING


def _always(*_: Any) -> bool:
    return True


def _fits(s: Situation, m: Method, values: dict, headroom: float = 1.0, **changes: Any) -> bool:
    """Whether the estimate fits, optionally within `headroom` x the device memory.

    It is checked at the gradient accumulation the plan will use (`_accum` for the micro-batch
    tried, unless set): accumulating keeps the gradients alive through the next forward, so a
    setting that fits at grad_accum 1 may not fit in the plan."""
    merged = {**values, **changes}
    merged.setdefault("grad_accum", _accum(s, merged.get("batch_size", TrainSettings.batch_size)))
    est = s.estimate(m, TrainSettings(**merged), s.gpus, None)
    ok = bool(est.get("fits")) and bool(est.get("supported", True))
    return ok and est["memory_gib"]["total"] <= headroom * s.memory_gib if headroom < 1 else ok


def _accum(s: Situation, batch_size: int) -> int:
    """Micro-batches per optimizer step for GLOBAL_BATCH sequences over all GPUs (at least 1)."""
    return max(1, math.ceil(GLOBAL_BATCH / (batch_size * s.gpus)))


def _batch_cap(s: Situation) -> int:
    """The largest micro-batch that keeps one step of every GPU within GLOBAL_BATCH (at least 1)."""
    return max(1, GLOBAL_BATCH // s.gpus)


def _largest_batch(s: Situation, m: Method, values: dict) -> int | None:
    """Largest micro-batch, at most `_batch_cap`, within HEADROOM of memory; else the largest
    that fits at all."""
    choices = [b for b in BATCH_CHOICES if b <= _batch_cap(s)]
    for headroom in (HEADROOM, 1.0):
        found = next((b for b in choices if _fits(s, m, values, headroom, batch_size=b)), None)
        if found is not None:
            return found
    return None


def _roomy_batch(s: Situation, values: dict) -> int:
    """The micro-batch the checkpointing rule tries without recomputation."""
    return values.get("batch_size", min(ROOMY_BATCH, _batch_cap(s)))


def _zero_stage(s: Situation, m: Method, values: dict) -> int:
    """The least sharding (0, 2, 3) at which batch 1 with checkpointing fits; 3 if none does."""
    return next((z for z in (0, 2, 3) if _fits(s, m, values, zero_stage=z, strategy=_strategy(values, z),
                                               batch_size=1, gradient_checkpointing=True)), 3)


def _strategy(values: dict, stage: int) -> str:
    """The user's --strategy where it can run this stage, else the usual engine for it."""
    chosen = values.get("strategy")
    return chosen if chosen is not None and sharding_conflict(chosen, stage) is None else STAGE_STRATEGY[stage]


def _needs_offload(s: Situation, m: Method, values: dict) -> bool:
    """Full sharding does not fit at batch 1 with checkpointing, but with CPU offload it does."""
    if s.device_kind != "gpu" or values.get("zero_stage") != 3:
        return False
    small = {"batch_size": 1, "gradient_checkpointing": True, "strategy": _strategy(values, 3)}
    return not _fits(s, m, values, **small) and _fits(s, m, values, cpu_offload=True, **small)


def _fewshot(s: Situation, m: Method, values: dict) -> int:
    k = 5 if s.examples is None else min(5, s.examples)
    if s.lengths_p95:
        k = min(k, max(0, s.max_position // s.lengths_p95 - 1))  # k demos + the query fit
    return k


def _p95_seq(s: Situation, m: Method, values: dict) -> int:
    return min(s.max_position, SEQ_MULTIPLE * math.ceil(s.lengths_p95 / SEQ_MULTIPLE))


def _adapter_on(s: Situation, m: Method, values: dict) -> bool:
    """LoRA/QLoRA always; DPO/RLHF unless the user asked for all weights (--no-adapter)."""
    return m in ADAPTERS or values.get("dpo_lora") is not False


def _n(s: Situation) -> int:
    return s.examples or 0


RULES: tuple[SettingRule, ...] = (
    # -- prompting: demonstrations and the context they need
    SettingRule("num_fewshot", "fit-context", _always, _fewshot,
                lambda s, m, v, x: f"{x} demonstrations: at most 5, no more than the examples, and "
                f"(k + 1) x p95 length must fit the {s.max_position}-token context", (Method.PROMPT,)),
    SettingRule("seq_len", "prompt-context", lambda s, m, v: bool(s.lengths_p95),
                lambda s, m, v: min(s.max_position, (v["num_fewshot"] + 1) * s.lengths_p95),
                lambda s, m, v, x: f"{v['num_fewshot']} demonstrations + the query at p95 length", (Method.PROMPT,)),
    # -- sequence length
    SettingRule("seq_len", "data-p95", lambda s, m, v: bool(s.lengths_p95), _p95_seq,
                lambda s, m, v, x: f"covers 95% of examples (p95 = {s.lengths_p95} tokens, max = "
                f"{s.lengths_max}), rounded up to a multiple of {SEQ_MULTIPLE}, at most the model's {s.max_position}",
                ALL),
    SettingRule("seq_len", "default", _always, lambda s, m, v: min(2048, s.max_position),
                lambda s, m, v, x: "no data to measure: 2048 tokens or the model's maximum", ALL),
    # -- numerics
    SettingRule("precision", "cpu-fp32", lambda s, m, v: s.device_kind == "cpu", lambda *_: "fp32",
                lambda *_: "CPU training runs in fp32 (no fast bf16 matmuls on most CPUs)", ALL),
    SettingRule("precision", "bf16-capable", lambda s, m, v: s.bf16, lambda *_: "bf16",
                lambda s, *_: f"{s.hardware} computes in bf16: half the memory of fp32, no loss scaling", ALL),
    SettingRule("precision", "fp16-only", _always, lambda *_: "fp16",
                lambda s, *_: f"{s.hardware} lacks fast bf16: fp16 with loss scaling", ALL),
    SettingRule("optimizer", "qlora-paged", lambda s, m, v: m is Method.QLORA and s.paged_optimizer,
                lambda *_: "paged-adamw-8bit",
                lambda *_: "QLoRA recipe: paged 8-bit AdamW absorbs memory spikes (Dettmers et al. 2023)"),
    SettingRule("optimizer", "adamw", _always, lambda *_: "adamw",
                lambda *_: "AdamW, the standard; 8-bit or paged variants appear below if memory is short"),
    # -- adapters
    SettingRule("lora_rank", "style-low-rank", lambda s, m, v: _adapter_on(s, m, v) and s.goal == "style", lambda *_: 8,
                lambda *_: "style/format is a low-rank change: r = 8 is enough", PEFT),
    SettingRule("lora_rank", "knowledge-high-rank",
                lambda s, m, v: _adapter_on(s, m, v) and s.goal == "knowledge" and _n(s) >= 5_000,
                lambda *_: 64, lambda s, *_: f"new knowledge from {_n(s):,} examples needs capacity: full FT "
                "learns 10-100x higher-rank updates than typical LoRA (Biderman et al. 2024)", PEFT),
    SettingRule("lora_rank", "default-rank", _adapter_on, lambda *_: 16,
                lambda *_: "r = 16, a common middle ground; raise it if the domain loss plateaus", PEFT),
    SettingRule("lora_alpha", "alpha-2r", _adapter_on, lambda s, m, v: 2 * v["lora_rank"],
                lambda *_: "alpha = 2r (Biderman et al. 2024 recipe)", PEFT),
    SettingRule("lora_targets", "all-linear", _adapter_on, lambda *_: "all-linear",
                lambda *_: "every linear layer: needed to match full fine-tuning (QLoRA paper, sec. 4)", PEFT),
    # -- learning rate and length of training
    SettingRule("learning_rate", "full-preserve", lambda s, m, v: m is Method.FULL and s.preserve_general,
                lambda *_: 5e-6, lambda *_: "half the usual full-FT LR: lower LRs forget less "
                "(eval_notes sec. 2.4), paired with replay", (Method.FULL,)),
    SettingRule("learning_rate", "full-default", _always, lambda *_: 1e-5,
                lambda *_: "full fine-tuning LR ~10x below LoRA's (Biderman et al. 2024)", (Method.FULL,)),
    SettingRule("learning_rate", "large-model-lora", lambda s, m, v: s.params > 20e9, lambda *_: 1e-4,
                lambda s, *_: f"{s.params / 1e9:.0f}B parameters: QLoRA's 1e-4 for 33B/65B models", ADAPTERS),
    SettingRule("learning_rate", "lora-preserve", lambda s, m, v: s.preserve_general, lambda *_: 1e-4,
                lambda *_: "half the usual LoRA LR to preserve general skills (eval_notes sec. 2.4)", ADAPTERS),
    SettingRule("learning_rate", "lora-default", _always, lambda *_: 2e-4,
                lambda *_: "QLoRA paper's LoRA LR for <= 13B models (~10x full FT's)", ADAPTERS),
    SettingRule("learning_rate", "preference-full-weight", lambda s, m, v: v.get("dpo_lora") is False,
                lambda *_: 5e-7, lambda *_: "all weights (--no-adapter): Zephyr's full-weight DPO LR "
                "(Tunstall et al. 2023)", (Method.DPO, Method.RLHF)),
    SettingRule("learning_rate", "preference-lr", _always, lambda *_: 5e-6,
                lambda *_: "preference tuning with an adapter: full-weight DPO recipes use ~5e-7 (Zephyr), and "
                "adapters want ~10x more (Biderman et al. 2024)", (Method.DPO, Method.RLHF)),
    SettingRule("dpo_lora", "dpo-adapter", _always, lambda *_: True,
                lambda *_: "train a LoRA adapter; the reference is the base with the adapter switched off, so "
                "no second model sits in memory (--no-adapter: all weights and a frozen copy)", (Method.DPO,)),
    SettingRule("dpo_beta", "dpo-beta", _always, lambda *_: 0.1,
                lambda *_: "beta = 0.1 keeps the policy near the reference (DPO paper, trl default)", (Method.DPO,)),
    SettingRule("epochs", "preference-one-epoch", lambda s, m, v: m in (Method.DPO, Method.RLHF), lambda *_: 1.0,
                lambda *_: "preference tuning overfits the pairs quickly: one epoch"),
    SettingRule("epochs", "unknown-size", lambda s, m, v: s.examples is None, lambda *_: 1.0,
                lambda *_: "no data or --examples: one pass (set --epochs when you know the size)"),
    SettingRule("epochs", "small-data", lambda s, m, v: _n(s) < 1_000, lambda *_: 3.0,
                lambda s, *_: f"{_n(s):,} examples: 3 passes to learn from little data"),
    SettingRule("epochs", "medium-data", lambda s, m, v: _n(s) <= 10_000, lambda *_: 2.0,
                lambda s, *_: f"{_n(s):,} examples: 2 passes"),
    SettingRule("epochs", "large-data", _always, lambda *_: 1.0,
                lambda s, *_: f"{_n(s):,} examples: one pass is enough and forgets least"),
    SettingRule("replay", "preserve-general", lambda s, m, v: s.preserve_general, lambda *_: REPLAY_FRACTION,
                lambda *_: f"--preserve-general: mix {REPLAY_FRACTION:.0%} general data into training "
                "(replay; CT0 kept earlier skills with 1%, eval_notes sec. 2.3) -- sweep it"),
    SettingRule("replay", "no-replay", _always, lambda *_: 0.0,
                lambda *_: "no replay (pass --preserve-general to mix in general data)"),
    # -- memory: these ask the estimator
    SettingRule("zero_stage", "shard-when-needed", lambda s, m, v: s.gpus > 1, _zero_stage,
                lambda s, m, v, x: f"{s.gpus} GPUs, stage {x}: {SHARDING_WHY[x]}"),
    SettingRule("zero_stage", "single-device", _always, lambda *_: 0, lambda *_: "one device: no sharding"),
    SettingRule("cpu_offload", "offload-last-resort", _needs_offload, lambda *_: True,
                lambda s, *_: f"even fully sharded over {s.gpus} GPUs it does not fit: {OFFLOAD_WHY}"),
    SettingRule("gradient_checkpointing", "roomy", lambda s, m, v: _fits(
        s, m, v, HEADROOM, gradient_checkpointing=False, batch_size=_roomy_batch(s, v)),
                lambda *_: False, lambda s, m, v, x: f"micro-batch {_roomy_batch(s, v)} fits "
                f"without it within {HEADROOM:.0%} of memory: skip the ~33% recompute"),
    SettingRule("gradient_checkpointing", "needed", _always, lambda *_: True,
                lambda *_: "recompute activations in the backward pass (+~33% compute) to save memory"),
    SettingRule("batch_size", "largest-fitting", lambda s, m, v: _largest_batch(s, m, v) is not None,
                _largest_batch, lambda s, m, v, x: f"largest micro-batch of {list(BATCH_CHOICES)}, at most "
                f"{GLOBAL_BATCH} / {s.gpus} GPU(s), whose estimate fits in {HEADROOM:.0%} of {s.memory_gib:g} GiB "
                "at the planned grad accumulation (or at all, if none does)", ALL),
    SettingRule("batch_size", "nothing-fits", _always, lambda *_: 1,
                lambda *_: "even micro-batch 1 does not fit: see the changes that make it fit", ALL),
    SettingRule("grad_accum", "global-batch", _always,
                lambda s, m, v: _accum(s, v["batch_size"]),
                lambda s, m, v, x: f"global batch = {v['batch_size']} x {x} x {s.gpus} GPU(s) = "
                f"{v['batch_size'] * x * s.gpus} sequences per step (target {GLOBAL_BATCH}, at least 1 step each)"),
)


def derive_settings(s: Situation, method: Method) -> tuple[TrainSettings, list[Derivation]]:
    """Apply the user's overrides, then the first matching rule per setting, in table order."""
    values: dict[str, Any] = {}
    out: list[Derivation] = []
    for name, value in s.overrides.items():
        values[name] = value
        out.append(Derivation(name, value, "override", "you set it"))
    for rule in RULES:
        if rule.field in values or method not in rule.methods or not rule.when(s, method, values):
            continue
        value = rule.value(s, method, values)
        values[rule.field] = value
        out.append(Derivation(rule.field, value, rule.name, rule.reason(s, method, values, value)))
    if "strategy" not in values and values.get("zero_stage"):
        values["strategy"] = STAGE_STRATEGY[values["zero_stage"]]
        out.append(Derivation("strategy", values["strategy"], "zero-strategy",
                              "ZeRO-3 runs as FSDP full sharding; stages 1-2 as DeepSpeed ZeRO"))
    return TrainSettings(**values), out
