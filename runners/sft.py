"""lora, qlora and full: supervised fine-tuning through trl's `SFTTrainer`.

QLoRA is LoRA on a 4-bit NF4 base (bitsandbytes, double quantisation): the same runner
with `quantized=True` (torchtune `qlora_* = partial(lora_*, quantize_base=True)`).

    prepare  tokenizer, data -> trl rows (loss mask chosen in runners/_data.py),
             upstream configs (runners/translate.py), model, SFTTrainer
    train    trainer.train() under the memory meter (runners/_train.py)
    save     adapter/ (PEFT) or model/ (safetensors); merged/ with --merge
"""

from __future__ import annotations

from runners._common import (
    RunContext,
    model_reference,
    resolve_learning_rate,
    resolve_seq_len,
    seed_everything,
)
from runners._data import prepare_sft, read_general_rows, read_training_rows
from runners._train import (
    load_tokenizer,
    merge_adapter,
    save_adapter,
    save_full_model,
    train_and_measure,
    trainable_parameters,
    watch,
)
from runners.translate import merge_load_kwargs, to_sft
from tunewise import hub
from tunewise.errors import InputError
from tunewise.methods import Method


class SFTRunner:
    """One SFT run; satisfies runners.Runner (prepare -> train -> save)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.adapter = ctx.plan.method in (Method.LORA, Method.QLORA)
        self.quantized = ctx.plan.method is Method.QLORA
        self.base_ref = model_reference(ctx.plan.model)
        self.trainer = None
        self.tokenizer = None
        self.watchers = None

    def prepare(self) -> None:
        from trl import SFTTrainer

        ctx, plan = self.ctx, self.ctx.plan
        if plan.init_from:
            raise InputError(f"--init-from continues an SFT run with dpo or rlhf; a {plan.method.value} run starts "
                             "from the base model", field="init_from")
        resolve_seq_len(ctx, self.base_ref)
        resolve_learning_rate(ctx, adapter=self.adapter)
        self.tokenizer = load_tokenizer(self.base_ref)
        data = read_training_rows(plan.data.train, plan.method)
        general = read_general_rows(plan.data.general) if ctx.settings.replay > 0 else None
        prepared = prepare_sft(data, self.tokenizer, ctx.settings, general)
        upstream = to_sft(ctx, loss=prepared.loss, adapter=self.adapter, quantized=self.quantized)
        seed_everything(ctx.settings.seed)
        model = hub.load_causal_lm(self.base_ref, upstream.load_kwargs)
        self.trainer = SFTTrainer(
            model=model,
            args=upstream.args,
            train_dataset=prepared.to_dataset(),
            processing_class=self.tokenizer,
            peft_config=upstream.peft_config,
        )
        if len(self.trainer.train_dataset) == 0:
            raise InputError("no example left after tokenisation and truncation", path=data.path)
        ctx.record.trainable_params = trainable_parameters(self.trainer.model)
        ctx.record.config.update(
            data=prepared.report,
            loss=prepared.loss,
            upstream=upstream.resolved,
            load_dtype=str(upstream.load_kwargs["dtype"]).removeprefix("torch."),
        )
        self.watchers = watch(self.trainer, ctx, label=plan.method.value)

    def train(self) -> None:
        train_and_measure(self.trainer, self.ctx, self.watchers)

    def save(self) -> dict[str, str]:
        ctx = self.ctx
        if not self.adapter:
            return {"model": save_full_model(self.trainer, self.tokenizer, ctx.run_dir, ctx.runtime.precision)}
        artifacts = {"adapter": save_adapter(self.trainer, self.tokenizer, ctx.run_dir, self.base_ref)}
        if ctx.options.merge and ctx.runtime.is_main:
            artifacts["merged"] = merge_adapter(
                self.base_ref, ctx.run_dir, merge_load_kwargs(ctx.runtime), self.tokenizer
            )
        return artifacts
