"""dpo: direct preference optimisation through trl's `DPOTrainer`.

Where it starts, and what the reference policy is (the reference is what the DPO loss
measures drift against; its log-probs equal the policy's at step 0, so the first loss is
ln 2 = -log sigmoid(0)):

| start (`init_from`)        | trains                    | reference                                   |
|----------------------------|---------------------------|---------------------------------------------|
| none, LoRA (default)       | a new adapter on the base | the base with the adapter disabled          |
| none, `dpo_lora: false`    | every weight              | a frozen copy of the base                   |
| an adapter run (lora/qlora)| that adapter, continued   | a frozen copy of that adapter (trl's "ref"  |
|                            |                           | adapter: adapter-sized, no second model)    |
| a full fine-tuning run     | its model/, every weight  | a frozen copy of that model                 |
| a full run + `dpo_lora`    | a new adapter on it       | that model with the adapter disabled        |

A continued adapter keeps the SFT adapter as the reference (not the bare base): DPO's
KL anchor is the SFT policy (Rafailov et al. 2023, §4), and only this keeps step 0 at ln 2.
"""

from __future__ import annotations

from pathlib import Path

from runners._common import (
    RunContext,
    model_reference,
    resolve_learning_rate,
    resolve_seq_len,
    seed_everything,
)
from runners._data import prepare_preference, read_training_rows
from runners._train import (
    load_tokenizer,
    merge_adapter,
    save_adapter,
    save_full_model,
    train_and_measure,
    trainable_parameters,
    watch,
)
from runners.translate import merge_load_kwargs, to_dpo
from tunewise import hub
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.records import load_run_record


class DPORunner:
    """One DPO run; satisfies runners.Runner (prepare -> train -> save)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.start = resolve_start(ctx)
        self.trainer = None
        self.tokenizer = None
        self.watchers = None

    def prepare(self) -> None:
        from trl import DPOTrainer

        ctx, start = self.ctx, self.start
        resolve_seq_len(ctx, start.model_ref)
        resolve_learning_rate(ctx, adapter=start.lora)
        self.tokenizer = load_tokenizer(start.tokenizer_ref)
        data = read_training_rows(ctx.plan.data.train, Method.DPO)
        prepared = prepare_preference(data, self.tokenizer, ctx.settings)
        upstream = to_dpo(ctx, adapter=start.lora, new_adapter=start.lora and start.adapter_dir is None)
        seed_everything(ctx.settings.seed)
        model = hub.load_causal_lm(start.model_ref, upstream.load_kwargs)
        if start.adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(start.adapter_dir), is_trainable=True)
        self.trainer = DPOTrainer(
            model=model,
            args=upstream.args,
            train_dataset=prepared.to_dataset(),
            processing_class=self.tokenizer,
            peft_config=upstream.peft_config,
        )
        ctx.record.base_model = start.base_ref
        ctx.record.trainable_params = trainable_parameters(self.trainer.model)
        ctx.record.config.update(
            data=prepared.report,
            loss="dpo sigmoid",
            upstream=upstream.resolved,
            load_dtype=str(upstream.load_kwargs["dtype"]).removeprefix("torch."),
            start=start.describe(),
        )
        ctx.record.extra["reference"] = start.reference
        self.watchers = watch(self.trainer, ctx, label="dpo")

    def train(self) -> None:
        train_and_measure(self.trainer, self.ctx, self.watchers)
        rows = self.watchers.metrics.rows
        if rows:
            self.ctx.record.extra["dpo"] = {
                "first_loss": rows[0].get("loss"),
                "first_reward_margin": rows[0].get("reward_margin"),
                "last_reward_margin": rows[-1].get("reward_margin"),
                "last_reward_accuracy": rows[-1].get("reward_accuracy"),
            }

    def save(self) -> dict[str, str]:
        ctx, start = self.ctx, self.start
        if not start.lora:
            if ctx.options.merge:
                ctx.notes.append("--merge ignored: full-weight DPO writes a complete model/")
            return {"model": save_full_model(self.trainer, self.tokenizer, ctx.run_dir, ctx.runtime.precision)}
        artifacts = {"adapter": save_adapter(self.trainer, self.tokenizer, ctx.run_dir, start.base_ref)}
        if ctx.options.merge and ctx.runtime.is_main:
            artifacts["merged"] = merge_adapter(start.base_ref, ctx.run_dir, merge_load_kwargs(ctx.runtime),
                                                self.tokenizer)
        return artifacts


class Start:
    """Where DPO starts: the model to load, an adapter to continue, and the reference used."""

    def __init__(self, base_ref: str, *, lora: bool, adapter_dir: Path | None = None,
                 model_dir: Path | None = None, init_run: Path | None = None) -> None:
        self.base_ref = base_ref  # what the saved adapter applies to (its base_model_name_or_path)
        self.lora = lora
        self.adapter_dir = adapter_dir
        self.model_dir = model_dir
        self.init_run = init_run
        self.model_ref = str(model_dir) if model_dir else base_ref
        self.tokenizer_ref = str(adapter_dir or model_dir or base_ref)

    @property
    def reference(self) -> str:
        if self.adapter_dir is not None:
            return "frozen copy of the initial adapter on the same base (trl 'ref' adapter; no second model)"
        if self.lora:
            return "the starting model with the adapter disabled (no second copy)"
        return "a frozen copy of the starting model"

    def describe(self) -> dict[str, str | bool | None]:
        return {"model": self.model_ref, "adapter": str(self.adapter_dir) if self.adapter_dir else None,
                "init_run": str(self.init_run) if self.init_run else None, "lora": self.lora}


def resolve_start(ctx: RunContext) -> Start:
    """Read `init_from` (an earlier run folder) and `dpo_lora` into a Start."""
    plan, want_lora = ctx.plan, ctx.settings.dpo_lora
    if not plan.init_from:
        return Start(model_reference(plan.model), lora=True if want_lora is None else want_lora)
    run = _find_run(plan.init_from, ctx.run_dir.parent)
    previous = load_run_record(run)
    if previous.status != "completed":
        raise InputError(f"init_from run is {previous.status}, not completed", path=run, field="init_from")
    if "adapter" in previous.artifacts:
        if want_lora is False:
            raise InputError("an adapter run continues as an adapter; drop dpo_lora: false or merge it first",
                             field="settings.dpo_lora")
        return Start(previous.base_model, lora=True, adapter_dir=run / previous.artifacts["adapter"], init_run=run)
    if "model" in previous.artifacts:
        model_dir = run / previous.artifacts["model"]
        lora = bool(want_lora)  # a fully fine-tuned start stays full unless LoRA is asked for
        return Start(str(model_dir) if lora else previous.base_model, lora=lora, model_dir=model_dir, init_run=run)
    raise InputError("init_from run has no adapter/ or model/ to start from", path=run, field="init_from")


def _find_run(value: str, out_dir: Path) -> Path:
    """A run folder given as a path, or as a run name inside the output folder."""
    for candidate in (Path(value).expanduser(), out_dir / value):
        if (candidate / "record.json").exists():
            return candidate.resolve()
    raise InputError("not a tunewise run folder (no record.json)", path=value, field="init_from")
