"""rlhf: supervised fine-tuning, a reward model, then online RL against it (three stages).

    step 1  SFT     reuse `init_from` (an adapter or full run), or train one here as a
                    nested run in `sft/` on the pairs' chosen responses (prompt -> chosen:
                    the DPO paper, §4, initialises the reference this way when no SFT
                    model exists)
    step 2  reward  trl `RewardTrainer` on the pairs -> `reward_model/`; its held-out pair
                    accuracy is recorded (runners/reward.py)
    step 3  policy  trl `RLOOTrainer`: k samples per prompt, scored by the reward model,
                    minus beta x the KL to the reference -> `adapter/` or `model/`

PPO or not: trl 1.16 ships no PPO trainer -- it moved to `trl.experimental.ppo` in v1.10
(trl#4482) and was removed since (trl#7020) -- so step 3 is RLOO (Ahmadian et al. 2024,
"Back to Basics"): REINFORCE with each sample's baseline the mean reward of the other k-1
samples of its prompt, the same KL-penalised reward-model objective as PPO-RLHF (Ouyang et
al. 2022, eq. 2), without PPO's value model (one model fewer in memory), and reported as
matching or beating PPO there.  The record states it (`extra.rlhf.algorithm`).

The reference policy (the KL anchor), as in DPO (runners/dpo.py):

| start                          | the policy trains          | reference                            |
|--------------------------------|----------------------------|--------------------------------------|
| step 1 here, or an adapter run | the SFT adapter, continued | a frozen copy of that adapter (trl's |
|                                |                            | "ref" adapter) on the same base      |
| a full run, LoRA policy        | a new adapter on that model| that model with the adapter disabled |
| a full run (or dpo_lora false) | every weight               | a frozen copy (a second model)       |

LoRA variants keep one base in memory for policy and reference.  The reward model is a
separate sequence-classification model: on disk a LoRA reward model is only an adapter
over the same base (`reward_model/`), in memory it is a merged copy (a classification
head cannot share the causal LM's modules while PEFT switches the policy's adapters).

Files: `metrics.jsonl` is the policy stage (reward, kl, completion_length, loss, ...);
`reward_metrics.jsonl` the reward-model stage.  `extra.rlhf` holds the stages, the reward
curve's first and last windows, the KL, and the held-out check: greedy completions of
held-out prompts from the reference and from the trained policy, both scored by the
reward model.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

from runners._common import RunContext, model_reference, seed_everything
from runners._data import prepare_preference, read_training_rows
from runners._train import (
    load_tokenizer,
    save_adapter,
    save_full_model,
    train_and_measure,
    trainable_parameters,
    watch,
)
from runners.dpo import Start, resolve_start
from runners.reward import (
    REWARD_DIR,
    REWARD_METRICS,
    RewardModelResult,
    RewardScorer,
    train_reward_model,
)
from runners.translate import to_rloo
from tunewise import hub
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

ALGORITHM = "rloo"
WHY_NOT_PPO = ("trl 1.16 has no PPO trainer (moved to trl.experimental.ppo in v1.10, removed since: trl#7020); "
               "RLOO (Ahmadian et al. 2024) optimises the same KL-penalised reward-model objective without a "
               "value model")
SFT_RUN = "sft"
HELD_OUT_FRACTION = 0.1  # pairs kept out of reward-model training when no held-out pairs are given
HELD_OUT_PROMPTS = 64  # prompts of the greedy before/after check (kept small: it generates)

# Settings for the bundled tiny model and data (`tunewise demo --methods rlhf`), measured by
# tests/integration/test_runner_rlhf.py: each stage runs max_steps steps of 16 sequences
# (pairs in step 2; 4 prompts x 4 samples in step 3).  The tiny model's LoRA reward model
# generalises poorly (held-out accuracy ~0.6), so its reward model trains every weight
# while the policy trains an adapter; 8 completions per step were too noisy to move it.
# Reward-model rate 3e-4 (tiny-llama v2, 40 steps): held-out pair accuracy 0.69 and greedy
# reward -0.42 -> 1.62 (97% of prompts better); 1e-3 over-fitted (policy barely moved).
DEMO_SETTINGS: dict[str, Any] = dict(
    batch_size=16, seq_len=128, max_steps=40, logging_steps=2, warmup_ratio=0.0, lr_scheduler="constant",
    lora_rank=8, lora_dropout=0.0, gradient_checkpointing=False, learning_rate=2e-3, rlhf_sft_lr=2e-3,
    rlhf_reward_lora=False, rlhf_reward_lr=3e-4, rlhf_generations=4, rlhf_response_tokens=32, rlhf_beta=0.05,
)


def demo_plan(model: str, train: str, eval_pairs: str | None = None, *, name: str = "rlhf",
              init_from: str | None = None):
    """The plan `tunewise demo --methods rlhf` runs (bundled model and preference files)."""
    from tunewise.plan import DataSpec, Plan

    return Plan(method=Method.RLHF, model=model, data=DataSpec(train=train, eval=eval_pairs, format="preference"),
                settings=TrainSettings(**DEMO_SETTINGS), name=name, init_from=init_from,
                reasons=["demo: the three RLHF stages on the bundled tiny model"])


class RLHFRunner:
    """One RLHF run; satisfies runners.Runner (prepare -> train -> save)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.start: Start | None = None
        self.trainer = None
        self.tokenizer = None
        self.watchers = None
        self.scorer: RewardScorer | None = None
        self.pairs: list[dict] = []
        self.held_out: list[dict] = []
        self.info: dict[str, Any] = {"algorithm": ALGORITHM, "why": WHY_NOT_PPO, "stages": {}}

    def prepare(self) -> None:
        ctx = self.ctx
        if ctx.plan.init_from:
            self.start = resolve_start(ctx)
        policy_lora = self.start.lora if self.start else ctx.settings.dpo_lora is not False
        reward_lora = policy_lora if ctx.settings.rlhf_reward_lora is None else ctx.settings.rlhf_reward_lora
        _resolve_rates(ctx, policy_lora=policy_lora, reward_lora=reward_lora)
        _check_batch(ctx)
        self.tokenizer = load_tokenizer(self._base())
        data = read_training_rows(ctx.plan.data.train, Method.RLHF)
        prepared = prepare_preference(data, self.tokenizer, ctx.settings)
        self.pairs, self.held_out, source = _held_out(prepared.rows, ctx, self.tokenizer)
        prepared.report.update(reward_train_pairs=len(self.pairs), held_out_pairs=len(self.held_out),
                               held_out=source, prompts=len(_unique_prompts(self.pairs)))
        self.info["reward_lora"] = reward_lora
        ctx.record.config.update(
            data=prepared.report, loss="rlhf: reward-model Bradley-Terry, then RLOO with a KL penalty",
            start={"lora": policy_lora, "init_run": ctx.plan.init_from, "sft": "init_from" if self.start else "step 1"},
        )
        ctx.record.extra["rlhf"] = self.info

    def train(self) -> None:
        if self.start is None:
            self.start = self._sft_stage()
        self._reward_stage()
        self._policy_stage()
        self._summarise()

    def save(self) -> dict[str, str]:
        ctx, start = self.ctx, self.start
        if start.lora:
            policy = {"adapter": save_adapter(self.trainer, self.tokenizer, ctx.run_dir, start.base_ref)}
        else:
            policy = {"model": save_full_model(self.trainer, self.tokenizer, ctx.run_dir, ctx.runtime.precision)}
        artifacts = {**policy, "reward_model": REWARD_DIR, "reward_metrics": REWARD_METRICS}
        if (ctx.run_dir / SFT_RUN / "record.json").exists():
            artifacts["sft"] = SFT_RUN
        return artifacts

    # ------------------------------------------------------------------------- stages

    def _base(self) -> str:
        """The model the reward model starts from: the original base, not the SFT result."""
        if self.start is not None and self.start.init_run is not None:
            from tunewise.records import load_run_record

            return load_run_record(self.start.init_run).base_model
        return model_reference(self.ctx.plan.model)

    def _sft_stage(self) -> Start:
        """Step 1 without init_from: SFT on prompt -> chosen, as the nested run `sft/`."""
        from runners import execute
        from runners._common import prepare_run_dir, run_dir_for
        from tunewise.plan import DataSpec, Plan
        from tunewise.records import load_run_record

        ctx = self.ctx
        sft_dir = run_dir_for(ctx.run_dir, SFT_RUN)
        started = time.perf_counter()
        done = (sft_dir / "record.json").exists() and load_run_record(sft_dir).status == "completed"
        if not done:  # a completed step 1 is kept on --resume
            data = _write_sft_data(self.pairs, ctx.run_dir / "sft_data.jsonl")
            method = Method.LORA if ctx.settings.dpo_lora is not False else Method.FULL
            settings = ctx.settings.replace(learning_rate=ctx.settings.rlhf_sft_lr)  # None: the SFT default
            plan = Plan(method=method, model=ctx.plan.model, data=DataSpec(train=str(data)), settings=settings,
                        hardware=ctx.plan.hardware, name=SFT_RUN,
                        reasons=["rlhf step 1: supervised fine-tuning on the chosen responses"])
            options = dataclasses.replace(ctx.options, resume=False, overwrite=False, callbacks=())
            mode = prepare_run_dir(sft_dir, resume=False, overwrite=sft_dir.exists() and not done)
            execute(plan, sft_dir, options, mode)
        sft = load_run_record(sft_dir)
        self.info["stages"]["sft"] = {"run": SFT_RUN, "method": sft.method, "steps": sft.steps,
                                      "final_loss": sft.final_loss, "reused": done,
                                      "seconds": round(time.perf_counter() - started, 3)}
        return resolve_start(dataclasses.replace(ctx, plan=dataclasses.replace(ctx.plan, init_from=str(sft_dir))))

    def _reward_stage(self) -> None:
        """Step 2: train the reward model (again on --resume: no checkpoint) and score the held-out pairs."""
        ctx = self.ctx
        result = train_reward_model(ctx, base=self._base(), adapter=self.info["reward_lora"],
                                    tokenizer=self.tokenizer, train_rows=self.pairs, eval_rows=self.held_out,
                                    held_out=ctx.record.config["data"]["held_out"])
        self.scorer = result.scorer
        self.info["stages"]["reward_model"] = result.summary.to_dict()
        self.info["reward_model_accuracy"] = result.summary.accuracy

    def _policy_stage(self) -> None:
        """Step 3: RLOO against the reward model (metrics.jsonl, the record's steps and memory)."""
        from datasets import Dataset
        from trl import RLOOTrainer

        ctx, start = self.ctx, self.start
        upstream = to_rloo(ctx, adapter=start.lora, new_adapter=start.lora and start.adapter_dir is None)
        seed_everything(ctx.settings.seed)
        model = hub.load_causal_lm(start.model_ref, upstream.load_kwargs)
        if start.adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(start.adapter_dir), is_trainable=True)
        prompts = Dataset.from_list([{"prompt": p} for p in _unique_prompts(self.pairs)])
        self.trainer = RLOOTrainer(model=model, reward_funcs=self.scorer, args=upstream.args, train_dataset=prompts,
                                   processing_class=self.tokenizer, peft_config=upstream.peft_config)
        self.scorer.model.to(self.trainer.accelerator.device)
        ctx.record.base_model = start.base_ref
        ctx.record.trainable_params = trainable_parameters(self.trainer.model)
        ctx.record.config.update(upstream=upstream.resolved, start={**ctx.record.config["start"], **start.describe()},
                                 load_dtype=str(upstream.load_kwargs["dtype"]).removeprefix("torch."))
        ctx.record.extra["reference"] = start.reference
        self.watchers = watch(self.trainer, ctx, label="rlhf")
        started = time.perf_counter()
        train_and_measure(self.trainer, ctx, self.watchers)
        self.info["stages"]["policy"] = {"algorithm": ALGORITHM, "steps": ctx.record.steps,
                                         "seconds": round(time.perf_counter() - started, 3)}

    def _summarise(self) -> None:
        """Reward curve and KL windows from metrics.jsonl; the held-out before/after check."""
        from runners.rlhf_check import held_out_rewards, windows

        rows = self.watchers.metrics.rows
        self.info["reward"] = windows(rows, "reward")
        self.info["kl"] = windows(rows, "kl")
        self.info["completion_length"] = windows(rows, "completion_length")
        prompts = _unique_prompts(self.held_out)[:HELD_OUT_PROMPTS] or _unique_prompts(self.pairs)[:HELD_OUT_PROMPTS]
        self.info["held_out"] = held_out_rewards(self.trainer, self.tokenizer, self.scorer, prompts,
                                                 self.ctx.settings.rlhf_response_tokens)


# ----------------------------------------------------------------------------- helpers


def _resolve_rates(ctx: RunContext, *, policy_lora: bool, reward_lora: bool) -> None:
    """Defaults for the unset learning rates, noted in the record.

    Policy: trl RLOOConfig's 1e-6 for all weights; adapters ~10x higher (Biderman et al.
    2024), 1e-5.  Reward model: InstructGPT's reward models trained at ~9e-6 (Ouyang et al.
    2022, appendix C.2), so 1e-5 for all weights; trl RewardConfig's 1e-4 for an adapter.
    """
    s, notes = ctx.settings, ctx.notes
    policy = s.learning_rate or (1e-5 if policy_lora else 1e-6)
    reward = s.rlhf_reward_lr or (1e-4 if reward_lora else 1e-5)
    notes.append(f"policy learning rate {policy:g}: " + ("from the plan" if s.learning_rate else
                 "rlhf default (trl RLOOConfig 1e-6 for all weights, x10 for an adapter)"))
    notes.append(f"reward-model learning rate {reward:g}: " + ("from the plan" if s.rlhf_reward_lr else
                 "rlhf default (InstructGPT ~1e-5 for all weights; trl RewardConfig 1e-4 for an adapter)"))
    ctx.settings = s.replace(learning_rate=policy, rlhf_reward_lr=reward)


def _check_batch(ctx: RunContext) -> None:
    """trl samples k completions per prompt within one generation batch: it must divide by k."""
    s, world = ctx.settings, ctx.runtime.world_size
    total = s.batch_size * s.grad_accum * world
    if total % s.rlhf_generations:
        raise InputError(
            f"batch_size x grad_accum x processes = {total} completions per step is not a multiple of "
            f"rlhf_generations = {s.rlhf_generations} (samples per prompt); change one of them",
            field="rlhf_generations",
        )


def _held_out(rows: list[dict], ctx: RunContext, tokenizer) -> tuple[list[dict], list[dict], str]:
    """(reward-model training pairs, held-out pairs, where the held-out pairs came from).

    `data.eval` is used when it holds preference pairs; other eval files (e.g. the domain
    set for `tunewise eval`) are left alone and a seeded 10% of the pairs is held out.
    """
    from runners._data import prepare_preference as shape
    from tunewise.data import load_dataset

    path = ctx.plan.data.eval
    if path:
        try:
            data = load_dataset(path, expect="preference")
        except InputError:
            data = None
        if data is not None:
            return rows, shape(data, tokenizer, ctx.settings).rows, str(path)
    if len(rows) < 10:
        raise InputError(f"{len(rows)} preference pairs: too few to hold some out for the reward model's "
                         "accuracy; add pairs or pass held-out pairs as data.eval", field="data.train")
    order = list(range(len(rows)))
    random.Random(ctx.settings.seed).shuffle(order)
    cut = max(1, round(len(rows) * HELD_OUT_FRACTION))
    held = sorted(order[:cut])
    kept = set(order[cut:])
    return ([r for i, r in enumerate(rows) if i in kept], [rows[i] for i in held],
            f"{cut} of the training pairs held out (seeded; no preference pairs in data.eval)")


def _unique_prompts(rows: list[dict]) -> list:
    seen, out = set(), []
    for r in rows:
        key = json.dumps(r["prompt"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r["prompt"])
    return out


def _write_sft_data(pairs: list[dict], path):
    """The chosen responses as SFT rows: prompt/completion, or messages for chat pairs."""
    from tunewise.atomic import atomic_write_text

    rows = []
    for r in pairs:
        if isinstance(r["prompt"], list):
            rows.append({"messages": r["prompt"] + r["chosen"]})
        else:
            rows.append({"prompt": r["prompt"], "completion": r["chosen"]})
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    return path


# The contract check: the RLHF result summarised for reports (and tests) in one place.
__all__ = ["ALGORITHM", "DEMO_SETTINGS", "RLHFRunner", "RewardModelResult", "demo_plan"]
