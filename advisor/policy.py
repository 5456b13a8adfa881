"""Which method: an ordered list of small rules, the first whose predicate holds wins.

Baseline (issue 2, the field's established guidance), refined by the goal:
  fewer than ~100 examples            -> prompt (few-shot)
  ~100-10,000 examples                -> LoRA; QLoRA when memory (over 90% used) or budget is tight
  > 10,000 with the memory and budget -> full fine-tuning (not for a style/format goal:
                                         adapters suffice there and forget less)
  preference pairs                    -> DPO (RLHF only when asked -- --method rlhf, or --online-rl
                                         for an explicit reward model / online RL -- with its trade-offs)
  many tasks switched often (--tasks) -> one base plus a LoRA adapter per task
Each rule gives its reason; `choose` returns the method, the rule and the reasons, plus
notes (forgetting, goal/data mismatches) that do not change the choice.

Evidence for the notes: Biderman et al. 2024 (full FT learns more and forgets more than
LoRA; reference/eval_notes.md sec. 2.1), replay and LR (sec. 2.3-2.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from advisor.context import Situation
from tunewise.methods import Method

FEW_EXAMPLES = 100
MANY_EXAMPLES = 10_000
MANY_TASKS = 2

RLHF_TRADE_OFFS = (
    "RLHF vs DPO: three stages (SFT, a reward model, then online RL against it) instead of one; "
    "policy, reference and reward model in memory at once (PPO adds a value model; tunewise runs RLOO, "
    "which needs none) where DPO with an adapter holds one base; every step samples completions token by "
    "token, so it is several times slower; and online RL is less stable: sensitive to the KL coefficient, "
    "the learning rate and the reward model's quality, and it can over-optimise a flawed reward model "
    "(reward hacking). It pays off when you need an explicit reward model (to score, filter or reuse) or "
    "learning from the policy's own samples (online RL)"
)


@dataclass(frozen=True)
class Rule:
    """A predicate, the method it picks, and why (a function of the situation)."""

    name: str
    when: Callable[[Situation], bool]
    pick: Callable[[Situation], Method]
    reason: Callable[[Situation], str]


def _n(s: Situation) -> int:
    return s.examples if s.examples is not None else 0


def _adapter(s: Situation) -> Method:
    """LoRA if it fits with room to spare, else QLoRA if that fits, else LoRA anyway."""
    if s.roomy(Method.LORA):
        return Method.LORA
    return Method.QLORA if s.ok(Method.QLORA) else Method.LORA


def _size(method: Method, s: Situation) -> str:
    c = s.candidates[method]
    cost = f", ${c.cost_usd:,.2f}" if c.cost_usd is not None else ""
    return f"{c.total_gib:.1f} of {s.memory_gib:g} GiB{cost}"


def _lora_vs_qlora(s: Situation) -> str:
    """Why LoRA over QLoRA when both fit: same adapter, 16-bit base, faster steps."""
    lora, qlora = s.candidates[Method.LORA], s.candidates[Method.QLORA]
    at = f"LoRA fits at micro-batch {lora.settings.batch_size} ({_size(Method.LORA, s)})"
    if not s.ok(Method.QLORA):
        return f"{at}; {s.why_not(Method.QLORA)}"
    slower = ""
    if lora.time_hours and qlora.time_hours:
        slower = f", {qlora.time_hours / lora.time_hours:.1f}x LoRA's time (4-bit dequantisation in every step)"
    return (f"{at} with the base in 16-bit, so QLoRA's memory saving is not needed; QLoRA would run "
            f"micro-batch {qlora.settings.batch_size} ({_size(Method.QLORA, s)}){slower}")


def _data_size(s: Situation) -> str:
    if s.examples is None:
        return "no data given"
    return f"{s.examples:,} examples"


def rlhf_vs_dpo(s: Situation) -> str:
    """The RLHF vs DPO trade-offs, with this situation's estimated memory and time when known."""
    rl, dpo = s.candidates.get(Method.RLHF), s.candidates.get(Method.DPO)
    if rl is None or dpo is None:
        return RLHF_TRADE_OFFS
    here = [f"{rl.total_gib:.1f} vs {dpo.total_gib:.1f} GiB per device"]
    if rl.time_hours and dpo.time_hours:
        here.append(f"{rl.time_hours:,.3g} vs {dpo.time_hours:,.3g} h ({rl.time_hours / dpo.time_hours:.1f}x)")
    return f"{RLHF_TRADE_OFFS}. Here RLHF vs DPO: {', '.join(here)}"


def _wants_online_rl(s: Situation) -> bool:
    return s.online_rl and s.forced is None and s.format in (None, "preference")


def data_wants_full(s: Situation) -> bool:
    """More than MANY_EXAMPLES examples, for a goal beyond style/format: full fine-tuning's case."""
    return _n(s) > MANY_EXAMPLES and s.goal != "style"


def _few(s: Situation) -> bool:
    return s.examples is not None and s.examples < FEW_EXAMPLES


def _fits_memory(s: Situation, method: Method) -> bool:
    cand = s.candidates.get(method)
    return cand is not None and cand.fits


def _fitting_adapter(s: Situation) -> Method | None:
    """LoRA or else QLoRA, the first that is ok (memory, budget, time), for few examples."""
    return next((m for m in (Method.LORA, Method.QLORA) if s.ok(m)), None)


def _closest(s: Situation) -> str:
    method = _least_bad(s)
    if _fits_memory(s, method):
        return (f"{method.value} is the closest: it fits in memory, so a larger --budget-usd or --max-hours, "
                "a faster GPU, more GPUs or a smaller model makes it a plan")
    return f"{method.value} is the closest (see the changes below)"


def _least_bad(s: Situation) -> Method:
    """When no method is ok: the one the data asks for if it at least fits in memory (then only
    the budget or the time limit is missed, which a user can relax), else the first of LoRA,
    QLoRA, full that fits in memory, else LoRA (the fixes below say what would make it fit)."""
    wanted = Method.FULL if data_wants_full(s) else Method.LORA
    order = (wanted, Method.LORA, Method.QLORA, Method.FULL)
    return next((m for m in order if _fits_memory(s, m)), Method.LORA)

RULES: tuple[Rule, ...] = (
    Rule("asked-rlhf", lambda s: s.forced is Method.RLHF, lambda s: Method.RLHF,
         lambda s: "you asked for RLHF (--method rlhf). " + rlhf_vs_dpo(s)),
    Rule("asked", lambda s: s.forced is not None, lambda s: s.forced,
         lambda s: f"you asked for {s.forced.value} (--method)"),
    Rule("asked-online-rl", _wants_online_rl, lambda s: Method.RLHF,
         lambda s: "you asked for an explicit reward model and online RL (--online-rl): RLHF. " + rlhf_vs_dpo(s)),
    Rule("preference-pairs", lambda s: s.format == "preference", lambda s: Method.DPO,
         lambda s: "the data are preference pairs (prompt/chosen/rejected): DPO learns from them directly "
         "in one stage, with no reward model and no sampling. RLHF only when asked (--method rlhf, or "
         "--online-rl when you need a reward model or online RL): " + rlhf_vs_dpo(s)),
    Rule("few-examples", lambda s: _few(s) and s.ok(Method.PROMPT), lambda s: Method.PROMPT,
         lambda s: f"{_data_size(s)} (< ~{FEW_EXAMPLES}): too few to train without overfitting; "
         "use them as few-shot demonstrations in the prompt"),
    Rule("few-examples-prompt-too-big", lambda s: _few(s) and _fitting_adapter(s) is not None, _fitting_adapter,
         lambda s: f"{_data_size(s)} (< ~{FEW_EXAMPLES}) would be few-shot demonstrations, but "
         f"{s.why_not(Method.PROMPT)}; an adapter trains on them instead ({_size(_fitting_adapter(s), s)}) "
         "-- expect it to overfit so few examples: hold some out and check with `tunewise eval`"),
    Rule("many-tasks", lambda s: s.tasks >= MANY_TASKS, _adapter,
         lambda s: f"{s.tasks} tasks switched often: one base model plus a small adapter per task "
         f"(MBs each, hot-swapped) instead of {s.tasks} full copies of a {s.params / 1e9:.1f}B model; "
         + (_lora_vs_qlora(s) if s.roomy(Method.LORA) else s.why_not(Method.LORA))),
    Rule("large-data-full",
         lambda s: data_wants_full(s) and s.roomy(Method.FULL), lambda s: Method.FULL,
         lambda s: f"{_data_size(s)} (> {MANY_EXAMPLES:,}) and full fine-tuning fits "
         f"({_size(Method.FULL, s)}{_budget_note(s)}): updating every weight learns the most from large data"),
    Rule("lora-fits", lambda s: s.roomy(Method.LORA), lambda s: Method.LORA,
         lambda s: f"{_data_size(s)}: {_why_adapter(s)}; {_lora_vs_qlora(s)}"),
    Rule("qlora-when-tight", lambda s: s.ok(Method.QLORA), lambda s: Method.QLORA,
         lambda s: f"{_data_size(s)}: {_why_adapter(s)}; {s.why_not(Method.LORA)}, "
         f"QLoRA fits ({_size(Method.QLORA, s)}): 4-bit NF4 base, adapters in 16-bit"),
    Rule("lora-tight", lambda s: s.ok(Method.LORA), lambda s: Method.LORA,
         lambda s: f"{_data_size(s)}: {_why_adapter(s)}; {s.why_not(Method.LORA)} and "
         f"{s.why_not(Method.QLORA)}: it may run out of memory -- try it, or see the changes below"),
    Rule("nothing-fits", lambda s: True, _least_bad,
         lambda s: f"{_data_size(s)}, but no training method fits {s.gpus} x {s.hardware} "
         f"({s.memory_gib:g} GiB), the budget and {s.max_hours:g} h as planned: "
         + "; ".join(s.why_not(m) for m in (Method.LORA, Method.QLORA, Method.FULL))
         + f"; {_closest(s)}"),
)



def _budget_note(s: Situation) -> str:
    return f", within the ${s.budget_usd:,.2f} budget" if s.budget_usd is not None else ""


def _why_adapter(s: Situation) -> str:
    if s.examples is None:
        return "without a data size, adapters are the safe default (cheap, and they forget less than full FT)"
    if s.examples > MANY_EXAMPLES:
        if s.goal == "style":
            return "a style/format goal is a small change that adapters learn well, and LoRA forgets less"
        return f"full fine-tuning would suit this much data but {s.why_not(Method.FULL)}"
    return f"in the ~{FEW_EXAMPLES}-{MANY_EXAMPLES:,} range adapters learn the task and forget less than full FT"


@dataclass(frozen=True)
class Choice:
    method: Method
    rule: str
    reasons: list[str]
    notes: list[str]  # warnings and proposals that do not change the method


def choose(s: Situation) -> Choice:
    """The first rule that holds picks the method; notes are added for every pick."""
    for rule in RULES:
        if rule.when(s):
            method = rule.pick(s)
            return Choice(method, rule.name, [f"[{rule.name}] {rule.reason(s)}"], notes(s, method))
    raise AssertionError("the last rule always holds")  # pragma: no cover


def notes(s: Situation, method: Method) -> list[str]:
    """Forgetting warnings, goal/data mismatches, and other things to know about the pick."""
    out = []
    if method is Method.FULL and not s.preserve_general:
        out.append("forgetting: full fine-tuning on one narrow dataset degrades general skills more than "
                   "LoRA (Biderman et al. 2024: LoRA learns less and forgets less). Add --preserve-general "
                   "to replay ~5% general data and halve the learning rate, and check with `tunewise eval`")
    elif method.trains and s.preserve_general:
        out.append("--preserve-general: replay of general data and a lower learning rate are in the settings; "
                   "`tunewise eval --retention` measures what was kept")
    if s.online_rl and s.format not in (None, "preference"):
        out.append(f"--online-rl needs prompt/chosen/rejected pairs for its reward model; this data is "
                   f"{s.format}, so it was not used")
    if s.goal == "preference" and s.format not in (None, "preference"):
        out.append(f"goal 'preference' needs prompt/chosen/rejected pairs for DPO; this data is {s.format}, "
                   "so the plan is supervised fine-tuning")
    if s.goal == "knowledge" and method in (Method.LORA, Method.QLORA) and _n(s) > MANY_EXAMPLES:
        out.append("knowledge goal on adapters: LoRA learns less new content than full fine-tuning; "
                   "a higher rank helps (set in the settings below)")
    if method is Method.PROMPT and s.goal == "knowledge":
        out.append("for facts that change or do not fit in a prompt, retrieval usually beats both "
                   "few-shot prompting and fine-tuning")
    verdict = s.data_verdicts.get(method)
    if verdict is not None and verdict.verdict in ("insufficient", "marginal", "wrong-format"):
        out.append(f"data for {method.value}: {verdict.verdict} -- {verdict.reason}")
    return out
