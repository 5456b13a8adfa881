"""The specialisation methods tunewise knows, as one enum.

A contract test checks that every member has an estimator, a policy rule that can choose
it, a runner and a README row.
"""

from enum import StrEnum


class Method(StrEnum):
    """How a model is specialised."""

    PROMPT = "prompt"  # few-shot prompting, no training
    LORA = "lora"  # low-rank adapters on a 16/32-bit frozen base
    QLORA = "qlora"  # LoRA on a 4-bit NF4 base (bitsandbytes)
    FULL = "full"  # every weight trained
    DPO = "dpo"  # direct preference optimisation on chosen/rejected pairs
    RLHF = "rlhf"  # reward model + PPO (or RLOO/GRPO) against it

    @property
    def trains(self) -> bool:
        return self is not Method.PROMPT

    @property
    def uses_adapter(self) -> bool:
        """Whether the trained artefact is a PEFT adapter (LoRA-style) by default."""
        return self in (Method.LORA, Method.QLORA)


def parse_method(value: str) -> Method:
    """Return the Method named by `value` or raise InputError listing the valid names."""
    from tunewise.errors import InputError

    try:
        return Method(value.strip().lower())
    except ValueError:
        valid = ", ".join(m.value for m in Method)
        raise InputError(f"unknown method {value!r}; choose one of: {valid}", field="method") from None
