"""Training settings: one validated dataclass shared by the advisor, plans and runners.

The advisor estimates with it, `plan.yaml` stores it, and each runner translates it into
upstream objects in exactly one function.  `None` means "use the method's default"
(resolved by the policy or the runner, and recorded in the run's resolved config).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tunewise.errors import InputError
from tunewise.schema import check_number

OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd")
PRECISIONS = ("bf16", "fp16", "fp32", "amp")
STRATEGIES = ("ddp", "fsdp", "deepspeed")
# transformers' SchedulerType values (lr_scheduler_type), copied so that a plan is checked
# without importing transformers; tests/unit/test_settings_checks.py keeps the two equal.
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")
MAX_SEED = 2**32 - 1  # numpy's RandomState (seeded by transformers' set_seed) takes 0..2**32-1
# More devices than any one training job has used: a count beyond it is a typo, and the
# arithmetic of memory, traffic and cost would run on nonsense.
MAX_GPUS = 65536
# The usual engine for a ZeRO stage when none is named: 1-2 DeepSpeed, 3 FSDP full shard.
STAGE_STRATEGY = {0: "ddp", 1: "deepspeed", 2: "deepspeed", 3: "fsdp"}


def sharding_conflict(strategy: str, zero_stage: int) -> str | None:
    """Why `strategy` cannot run ZeRO stage `zero_stage`, None when it can: one rule for the
    estimate flags, the policy and the launcher.  DDP shards nothing; FSDP shards gradients
    with the optimizer states (SHARD_GRAD_OP, stage 2) or everything (FULL_SHARD, 3) but has
    no optimizer-only stage 1; DeepSpeed runs every stage (0: ZeRO disabled)."""
    if strategy == "ddp" and zero_stage:
        return (f"zero_stage {zero_stage} with strategy ddp: DDP keeps a full copy on every GPU; "
                "use strategy fsdp (stages 2-3) or deepspeed (stages 1-3)")
    if strategy == "fsdp" and zero_stage == 1:
        return ("zero_stage 1 with strategy fsdp: FSDP has no optimizer-only sharding; use zero_stage 2 "
                "(SHARD_GRAD_OP) or 3 (FULL_SHARD), or strategy deepspeed")
    return None


@dataclass(frozen=True)
class TrainSettings:
    """How to train.  Sizes are per device; the global batch is batch_size*grad_accum*gpus."""

    batch_size: int = 4
    grad_accum: int = 1
    seq_len: int = 2048
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    learning_rate: float | None = None  # None: the method's default (see runners)
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    lora_rank: int = 16
    lora_alpha: int | None = None  # None: 2 * lora_rank
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"  # "all-linear" or a comma list such as "q_proj,v_proj"
    optimizer: str = "adamw"
    precision: str = "bf16"
    gradient_checkpointing: bool = True
    packing: bool = False
    zero_stage: int = 0  # 0 = plain DDP / single device; 1-3 = ZeRO / FSDP sharding
    strategy: str = "ddp"
    cpu_offload: bool = False
    replay: float = 0.0  # fraction of general data mixed into training
    num_fewshot: int = 5  # prompt method: demonstrations in the prompt
    dpo_beta: float = 0.1
    # dpo: train a LoRA adapter?  None: yes from the base or an adapter run, no from a
    # full fine-tuning run (runners/dpo.py has the table).
    dpo_lora: bool | None = None
    # rlhf (runners/rlhf.py): SFT -> reward model -> online RL against it.  The policy trains
    # an adapter unless dpo_lora is false (same rule as dpo).
    rlhf_beta: float = 0.05  # KL penalty towards the reference policy (trl RLOOConfig default)
    rlhf_generations: int = 4  # completions sampled per prompt (RLOO's k; >= 2 for its baseline)
    rlhf_response_tokens: int = 256  # longest sampled completion (generation length, KV cache)
    rlhf_reward_lora: bool | None = None  # reward model as a LoRA adapter; None: like the policy
    rlhf_reward_lr: float | None = None  # reward-model learning rate; None: its default (runners/rlhf.py)
    rlhf_sft_lr: float | None = None  # step-1 SFT learning rate (without init_from); None: the SFT default
    seed: int = 42
    logging_steps: int = 5
    save_steps: int | None = None  # None: every 500 steps (runners/translate.py) and on interrupt

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "seq_len", "lora_rank", "logging_steps"):
            if getattr(self, name) <= 0:
                raise InputError(f"must be positive, got {getattr(self, name)}", field=name)
        for name in ("max_steps", "save_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"must be positive, got {value}", field=name)
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise InputError(f"must be in (0, 1), got {self.learning_rate}", field="learning_rate")
        for name in ("replay", "lora_dropout", "warmup_ratio"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"must be in [0, 1), got {getattr(self, name)}", field=name)
        self._check_positive_finite()
        self._check_trainer_args()
        self._check_rlhf()
        if self.num_fewshot < 0:
            raise InputError(f"must be >= 0, got {self.num_fewshot}", field="num_fewshot")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("strategy", self.strategy, STRATEGIES)
        if self.zero_stage not in (0, 1, 2, 3):
            raise InputError(f"must be 0, 1, 2 or 3, got {self.zero_stage}", field="zero_stage")
        if not self.lora_targets.strip():
            raise InputError("must name modules or be 'all-linear'", field="lora_targets")

    def _check_positive_finite(self) -> None:
        for name in ("epochs", "dpo_beta"):
            check_number(name, getattr(self, name))

    def _check_trainer_args(self) -> None:
        """Values the runner hands to transformers/PEFT/numpy, which would only fail (or
        train nonsense) minutes into a run: refuse them here, naming the field."""
        _choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise InputError(f"must be positive, got {self.lora_alpha}", field="lora_alpha")
        check_number("weight_decay", self.weight_decay, zero_ok=True)
        if not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"must be in 0..{MAX_SEED} (numpy's seed range), got {self.seed}", field="seed")

    def _check_rlhf(self) -> None:
        if not 0 <= self.rlhf_beta < math.inf:
            raise InputError(f"must be >= 0, got {self.rlhf_beta}", field="rlhf_beta")
        if self.rlhf_generations < 2:
            raise InputError(f"must be >= 2 (RLOO's baseline needs another sample), got {self.rlhf_generations}",
                             field="rlhf_generations")
        if self.rlhf_response_tokens <= 0:
            raise InputError(f"must be positive, got {self.rlhf_response_tokens}", field="rlhf_response_tokens")
        for name in ("rlhf_reward_lr", "rlhf_sft_lr"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise InputError(f"must be in (0, 1), got {value}", field=name)

    @property
    def resolved_lora_alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank

    @property
    def target_modules(self) -> str | list[str]:
        """'all-linear' or the list of module names, as PEFT's target_modules expects."""
        if self.lora_targets.strip() == "all-linear":
            return "all-linear"
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()]

    def replace(self, **changes) -> TrainSettings:
        return dataclasses.replace(self, **changes)


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"expected one of {', '.join(allowed)}, got {value!r}", field=field)
