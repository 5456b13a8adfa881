"""RLHF step 2: the reward model, trained with trl's `RewardTrainer`, and scoring with it.

A sequence-classification head (`score`, one output) on the base model learns the
Bradley-Terry loss  -log sigmoid(r(x, y_chosen) - r(x, y_rejected))  (Ouyang et al. 2022,
eq. 1; trl `RewardTrainer.compute_loss`).  As a LoRA variant the adapter and the new head
are all that is trained and saved: `reward_model/` is a PEFT folder that points at the
same base as the policy; otherwise it is a full sequence-classification checkpoint.

Scores are always computed on the text the reward model was trained on: prompt +
completion + EOS for plain strings (RewardTrainer appends EOS), the chat template for
message lists.  trl's RLOO would score its samples without the EOS (it decodes with
`skip_special_tokens`), a different token position from training, so the policy stage
gets `RewardScorer` as a reward function instead of the bare model.

Held-out accuracy is the share of pairs with r(chosen) > r(rejected) over every pair
(RewardTrainer's own `eval_accuracy` is a mean of per-batch means, biased by a short last
batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners._callbacks import MetricsLog, Progress, StopOnSignal
from runners._common import RunContext
from runners._memory import PeakMemoryMeter
from runners._train import _publish, trainable_parameters
from runners.translate import to_reward
from tunewise.errors import InputError, first_line
from tunewise.schema import to_mapping

REWARD_DIR = "reward_model"
REWARD_METRICS = "reward_metrics.jsonl"
SCORE_BATCH = 16


@dataclass
class RewardModelResult:
    """What step 2 produced, for the run record."""

    path: str  # relative to the run folder
    adapter: bool
    base: str  # the model the head (and adapter) sit on
    accuracy: float  # held-out pairs ranked chosen > rejected
    margin: float  # mean r(chosen) - r(rejected) on the held-out pairs
    pairs: int
    held_out: str  # where the held-out pairs came from
    train: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


@dataclass
class RewardStage:
    summary: RewardModelResult
    scorer: RewardScorer  # the trained model, ready to score the policy's samples


def train_reward_model(ctx: RunContext, *, base: str, adapter: bool, tokenizer, train_rows: list[dict],
                       eval_rows: list[dict], held_out: str) -> RewardStage:
    """Train, publish `reward_model/` atomically, and measure held-out pair accuracy."""
    from datasets import Dataset
    from trl import RewardTrainer

    upstream = to_reward(ctx, adapter=adapter, output_dir=str(ctx.run_dir / ".reward_checkpoints"))
    trainer = RewardTrainer(model=load_reward_model(base, upstream.load_kwargs), args=upstream.args,
                            train_dataset=Dataset.from_list(train_rows), processing_class=tokenizer,
                            peft_config=upstream.peft_config)
    if len(trainer.train_dataset) == 0:
        raise InputError(f"no preference pair fits seq_len={ctx.settings.seq_len}", field="seq_len")
    watchers = _watch(trainer, ctx)
    trainable = trainable_parameters(trainer.model)
    try:
        peak, seconds = _train(trainer, ctx, watchers)
    finally:
        import shutil

        shutil.rmtree(upstream.args.output_dir, ignore_errors=True)  # save_strategy "no": only trainer leftovers
    model = trainer.accelerator.unwrap_model(trainer.model)
    _publish(ctx.run_dir, REWARD_DIR, lambda tmp: _save(model, tokenizer, tmp, base), trainer)
    scorer = RewardScorer(_for_scoring(model, adapter, ctx.runtime), tokenizer)
    accuracy, margin = pair_accuracy(scorer, eval_rows)
    rows = watchers["metrics"].rows
    summary = RewardModelResult(
        path=REWARD_DIR, adapter=adapter, base=base, accuracy=accuracy, margin=margin, pairs=len(eval_rows),
        held_out=held_out,
        train={"steps": trainer.state.global_step, "trainable_params": trainable,
               "learning_rate": ctx.settings.rlhf_reward_lr, "seconds": round(seconds, 3),
               "final_loss": rows[-1].get("loss") if rows else None,
               "train_accuracy": rows[-1].get("rm_accuracy") if rows else None,
               "peak_memory": to_mapping(peak), "metrics": REWARD_METRICS, **upstream.resolved},
    )
    return RewardStage(summary, scorer)


def _train(trainer, ctx: RunContext, watchers: dict[str, Any]):
    """trainer.train() under the memory meter; (peak memory, seconds)."""
    from runners._common import RunInterrupted

    meter = PeakMemoryMeter(ctx.runtime.device)
    meter.start()
    started = time.perf_counter()
    try:
        trainer.train()
    finally:
        peak = meter.stop()
        watchers["stop"].restore()
    if watchers["stop"].received:  # no checkpoint in this stage: it starts over on --resume
        raise RunInterrupted(f"stopped by {watchers['stop'].received} while training the reward model; "
                             "continue with --resume (this stage starts over)")
    return peak, time.perf_counter() - started


def _for_scoring(model, adapter: bool, runtime):
    """Frozen, in the compute precision, a LoRA reward model merged into its base copy."""
    import torch

    from runners.translate import compute_dtype

    if adapter:
        model = model.merge_and_unload()
    dtype = compute_dtype(runtime)
    if dtype is not torch.float32:  # amp computes in bf16 too (fp32 masters only matter while training)
        model = model.to(dtype)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_reward_model(ref: str, load_kwargs: dict[str, Any]):
    """A causal-LM checkpoint (or a saved reward model) with a one-output classification head."""
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(ref, num_labels=1, **load_kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load a reward model from it: {first_line(exc)}", path=ref,
                         field="model") from None


class RewardScorer:
    """A trl reward function (prompts, completions -> floats) backed by the reward model."""

    __name__ = "reward_model"  # trl names the logged metric `rewards/<name>/mean` after this

    def __init__(self, model, tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def __call__(self, prompts: list, completions: list, **_: Any) -> list[float]:
        import torch

        ids = [self.token_ids(p, c) for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(ids), SCORE_BATCH):
                batch = self.tokenizer.pad({"input_ids": ids[start : start + SCORE_BATCH]}, padding=True,
                                           padding_side="right", return_tensors="pt")
                batch = {k: v.to(self.model.device) for k, v in batch.items()}
                scores += self.model(**batch).logits[:, 0].float().tolist()
        self.model.train(was_training)
        return scores

    def token_ids(self, prompt, completion) -> list[int]:
        """Token ids exactly as RewardTrainer builds them for (prompt, completion)."""
        tok = self.tokenizer
        if isinstance(prompt, list):  # conversational: the chat template closes the turn
            rendered = tok.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)
            return list(rendered["input_ids"])
        text = prompt + completion
        if not text.endswith(tok.eos_token):
            text += tok.eos_token
        return list(tok(text=text)["input_ids"])


def pair_accuracy(scorer: RewardScorer, rows: list[dict]) -> tuple[float, float]:
    """(share of pairs with r(chosen) > r(rejected), mean r(chosen) - r(rejected))."""
    if not rows:
        return float("nan"), float("nan")
    prompts = [r["prompt"] for r in rows]
    chosen = scorer(prompts, [r["chosen"] for r in rows])
    rejected = scorer(prompts, [r["rejected"] for r in rows])
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    margin = sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(rows)
    return round(wins / len(rows), 6), round(margin, 6)


def _watch(trainer, ctx: RunContext) -> dict[str, Any]:
    """Our callbacks instead of the Trainer's printers; metrics go to reward_metrics.jsonl."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    path = ctx.run_dir / REWARD_METRICS
    path.unlink(missing_ok=True)  # a rerun of this stage (--resume) starts its curve again
    metrics = MetricsLog(path, write=ctx.runtime.is_main)
    stop = StopOnSignal()
    for callback in (metrics, stop, Progress("reward model", enabled=ctx.runtime.is_main)):
        trainer.add_callback(callback)
    return {"metrics": metrics, "stop": stop}


def _save(model, tokenizer, tmp: Path, base: str) -> None:
    import json

    from tunewise.atomic import atomic_write_json

    model.save_pretrained(tmp)  # PEFT: adapter + the score head (modules_to_save); else the full model
    tokenizer.save_pretrained(tmp)
    config_path = tmp / "adapter_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base
        atomic_write_json(config_path, config)
