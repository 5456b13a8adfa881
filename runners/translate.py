"""The one module that knows upstream argument names.

Our `TrainSettings` (plus the resolved runtime) become trl's `SFTConfig` / `DPOConfig` /
`RewardConfig` / `RLOOConfig`, peft's `LoraConfig`, transformers' `BitsAndBytesConfig` and
`from_pretrained` keyword arguments here and nowhere else: one translation function per
trainer (`to_sft`, `to_dpo`, `to_reward`, `to_rloo`) over a few shared pieces.  When
trl/peft/transformers rename an argument, this file and the pinned upper bounds in
pyproject.toml are what changes; the tiny-model integration tests catch the rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runners._common import RunContext, Runtime
from tunewise import hub
from tunewise.settings import TrainSettings

# Our optimizer names -> transformers `OptimizerNames`.
OPTIMIZERS = {
    "adamw": "adamw_torch",
    "adamw-8bit": "adamw_bnb_8bit",
    "paged-adamw-8bit": "paged_adamw_8bit",
    "sgd": "sgd",
}
DEFAULT_SAVE_STEPS = 500  # checkpoints for --resume when the plan sets none
KEEP_CHECKPOINTS = 2  # the last one plus one spare in case the newest is cut off mid-write


@dataclass
class Upstream:
    """What a runner hands to trl: the trainer config and how to load the model."""

    args: Any  # trl SFTConfig | DPOConfig
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # for AutoModelForCausalLM.from_pretrained
    peft_config: Any = None  # peft LoraConfig | None
    resolved: dict[str, Any] = field(default_factory=dict)  # upstream choices worth recording


def to_sft(ctx: RunContext, *, loss: str, adapter: bool, quantized: bool) -> Upstream:
    """SFTConfig (+ LoraConfig, BitsAndBytesConfig) for lora, qlora and full."""
    from trl import SFTConfig

    s = ctx.settings
    args = SFTConfig(
        **_training_args(ctx),
        max_length=s.seq_len,
        packing=s.packing,
        # bfd packing needs FlashAttention's padding-free kernels; "wrapped" runs everywhere.
        packing_strategy="bfd" if ctx.runtime.device == "cuda" else "wrapped",
        completion_only_loss=loss in ("completion_only", "last_turn_completion"),
        assistant_only_loss=loss == "assistant_only",
    )
    return Upstream(
        args=args,
        load_kwargs=_load_kwargs(ctx.runtime, adapter=adapter, quantized=quantized, sharding=_sharding(ctx)),
        peft_config=_lora(s) if adapter else None,
        resolved=_resolved(args, quantized),
    )


def to_dpo(ctx: RunContext, *, adapter: bool, new_adapter: bool) -> Upstream:
    """DPOConfig (+ a new LoraConfig when DPO trains a fresh adapter)."""
    from trl import DPOConfig

    s = ctx.settings
    args = DPOConfig(
        **_training_args(ctx),
        max_length=s.seq_len,
        beta=s.dpo_beta,
        loss_type=["sigmoid"],  # the original DPO loss (Rafailov et al. 2023): first step = ln 2
    )
    return Upstream(
        args=args,
        load_kwargs=_load_kwargs(ctx.runtime, adapter=adapter, quantized=False),
        peft_config=_lora(s) if new_adapter else None,
        resolved=_resolved(args, False),
    )


def to_reward(ctx: RunContext, *, adapter: bool, output_dir: str) -> Upstream:
    """RewardConfig (+ a sequence-classification LoraConfig) for the RLHF reward model.

    The reward head (`score`) is new, so it trains in full next to the adapter
    (`modules_to_save`, as trl's RewardTrainer docs recommend).  No checkpoints: the stage
    is short and is redone on --resume unless its `reward_model/` was published.
    """
    from trl import RewardConfig

    s = ctx.settings
    base = _training_args(ctx)
    base.update(output_dir=output_dir, save_strategy="no", learning_rate=s.rlhf_reward_lr)
    args = RewardConfig(**base, max_length=s.seq_len)
    return Upstream(
        args=args,
        load_kwargs=_load_kwargs(ctx.runtime, adapter=adapter, quantized=False),
        peft_config=_lora(s, task_type="SEQ_CLS", modules_to_save=["score"]) if adapter else None,
        resolved=_resolved(args, False),
    )


def to_rloo(ctx: RunContext, *, adapter: bool, new_adapter: bool) -> Upstream:
    """RLOOConfig (+ a new LoraConfig when the policy starts a fresh adapter).

    RLOO (Ahmadian et al. 2024): k samples per prompt, each one's baseline the mean reward
    of the other k-1; the KL to the reference is a penalty on the reward (beta x the
    summed per-token log ratio), as in PPO-RLHF (Ouyang et al. 2022, eq. 2).
    """
    from trl import RLOOConfig

    s = ctx.settings
    frozen = compute_dtype(ctx.runtime)
    args = RLOOConfig(
        **_training_args(ctx),
        num_generations=s.rlhf_generations,
        max_completion_length=s.rlhf_response_tokens,
        beta=s.rlhf_beta,
        # Used by trl only to build the frozen reference of a full-weight policy: keep it in the
        # compute precision (the trainable policy holds fp32 master weights).
        model_init_kwargs={"dtype": frozen},
    )
    return Upstream(
        args=args,
        load_kwargs=_load_kwargs(ctx.runtime, adapter=adapter, quantized=False),
        peft_config=_lora(s) if new_adapter else None,
        resolved={**_resolved(args, False), "algorithm": "rloo", "num_generations": args.num_generations,
                  "max_completion_length": args.max_completion_length, "beta": args.beta,
                  "temperature": args.temperature},
    )


def _training_args(ctx: RunContext) -> dict[str, Any]:
    """transformers.TrainingArguments fields shared by SFTConfig and DPOConfig."""
    s: TrainSettings = ctx.settings
    rt: Runtime = ctx.runtime
    optim = OPTIMIZERS[s.optimizer]
    if optim == "adamw_torch" and rt.device == "cuda":
        optim = "adamw_torch_fused"  # one kernel per step on GPU; identical maths
    return dict(
        output_dir=str(ctx.checkpoints_dir),
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps if s.max_steps is not None else -1,
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler,
        warmup_steps=s.warmup_ratio,  # a float in [0, 1) is a ratio of total steps (transformers 5)
        weight_decay=s.weight_decay,
        optim=optim,
        activation_checkpointing=s.gradient_checkpointing,  # transformers 5 name (gradient_ is deprecated)
        # autocast only for mixed precision; pure bf16 and fp32 compute in the weights' dtype
        bf16=rt.precision == "amp",
        fp16=rt.precision == "fp16",
        use_cpu=rt.device == "cpu",
        seed=s.seed,
        data_seed=s.seed,
        logging_steps=s.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN must reach the log so the run stops on it
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps",
        save_steps=s.save_steps or DEFAULT_SAVE_STEPS,
        save_total_limit=KEEP_CHECKPOINTS,
        report_to="none",
        disable_tqdm=True,  # tunewise draws its own progress (runners/_callbacks.py)
        dataloader_num_workers=0,
        remove_unused_columns=True,
        ddp_find_unused_parameters=False,
    )


def _lora(s: TrainSettings, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
    from peft import LoraConfig

    return LoraConfig(
        r=s.lora_rank,
        lora_alpha=s.resolved_lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.target_modules,
        bias="none",
        task_type=task_type,
        modules_to_save=modules_to_save,
    )


def compute_dtype(rt: Runtime):
    """The dtype matmuls run in: bf16 for "bf16" and "amp", fp16 for "fp16", else fp32."""
    import torch

    return {"bf16": torch.bfloat16, "amp": torch.bfloat16, "fp16": torch.float16}.get(rt.precision, torch.float32)


def quantization_config(rt: Runtime, *, sharded: bool = False):
    """QLoRA's 4-bit base: NF4 with double quantisation (Dettmers et al. 2023, §3).

    Sharded (FSDP, DeepSpeed): the packed 4-bit weights are stored in the compute dtype
    (`bnb_4bit_quant_storage`) so FSDP/ZeRO-3 shard them like the other weights
    (transformers docs, "FSDP-QLoRA"); one process keeps bitsandbytes' uint8 storage.
    """
    from transformers import BitsAndBytesConfig

    storage = {"bnb_4bit_quant_storage": compute_dtype(rt)} if sharded else {}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype(rt),
        **storage,
    )


def _sharding(ctx: RunContext) -> str | None:
    """"fsdp", "zero3" or "zero" when several processes shard the model; None otherwise."""
    s = ctx.settings
    if ctx.runtime.world_size <= 1 or s.strategy == "ddp":
        return None
    return "zero3" if s.strategy == "deepspeed" and s.zero_stage == 3 else ("fsdp" if s.strategy == "fsdp" else "zero")


def _load_kwargs(rt: Runtime, *, adapter: bool, quantized: bool, sharding: str | None = None) -> dict[str, Any]:
    """from_pretrained kwargs.

    Trained weights are loaded in their master dtype: bf16 for pure bf16, fp32 for amp/fp16
    (the Trainer autocasts; ZeRO paper's 16 bytes/param) and fp32.  A frozen base under an
    adapter never receives updates, so it has no masters: it is loaded in the compute dtype.
    """
    import torch

    if adapter:
        dtype = compute_dtype(rt)
    else:
        dtype = torch.bfloat16 if rt.precision == "bf16" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, **hub.load_kwargs()}  # safetensors only, no remote code
    if quantized:
        kwargs["quantization_config"] = quantization_config(rt, sharded=sharding is not None)
        if sharding != "zero3":  # ZeRO-3 places the weights itself (transformers refuses a device_map there)
            # A 4-bit model cannot be moved after loading: place it on this rank's device now.
            kwargs["device_map"] = {"": rt.local_rank if rt.device == "cuda" else "cpu"}
    return kwargs


def adapters_in_compute_dtype(model, rt: Runtime) -> int:
    """Pure bf16: cast the trainable LoRA weights to bf16 (PEFT's `autocast_adapter_dtype`
    upcasts them to fp32; trl does this same cast for QLoRA adapters).  Returns how many
    parameters were cast; other precisions keep PEFT's fp32 adapters (their masters)."""
    if rt.precision != "bf16":
        return 0
    return trainable_to_bf16(model)


def trainable_to_bf16(model) -> int:
    """Cast every trainable parameter that is not bf16 yet to bf16 in place; how many were cast."""
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.bfloat16:
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    return cast


def merge_load_kwargs(rt: Runtime) -> dict[str, Any]:
    """Loading the base for --merge: never 4-bit (a merged model is a plain checkpoint)."""
    import torch

    return {"dtype": torch.bfloat16 if rt.precision in ("bf16", "amp") else torch.float32, **hub.load_kwargs()}


def _resolved(args, quantized: bool) -> dict[str, Any]:
    out = {
        "optim": getattr(args.optim, "value", args.optim),
        "save_steps": args.save_steps,
        "bf16": args.bf16,
        "fp16": args.fp16,
    }
    if quantized:
        out["quantization"] = "nf4 + double quantisation (bitsandbytes)"
    return out
