"""`tunewise advise --probe-data`: short LoRA runs on growing shares of the data, held-out loss.

    held-out   --eval-data when given, else HOLDOUT_SHARE of the training rows (at most
               HOLDOUT_MAX, seeded), kept out of every training subset
    subsets    nested: the 25% subset is inside the 50% one (fewer moving parts between points)
    each run   the advisor's LoRA settings (QLoRA when that was advised), the same number of
               passes over its subset; every subset gets `epochs` = the plan's epochs, lowered
               so that the largest run stays within `max_steps`
    held-out   summed token loss and scored tokens per held-out example, with the loss mask
    loss       the training used (trl's collator builds the labels); the per-example sums
               come from `preprocess_logits_for_metrics` in `Trainer.predict`, so the
               bootstrap in advisor/data_curve.py can resample examples

The fit and the answer ("how many more examples for the target") are advisor/data_curve.py.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from advisor.data_curve import DataCurve, Point, data_curve
from tunewise.errors import InputError
from tunewise.methods import Method

FRACTIONS = (0.25, 0.5, 1.0)
HOLDOUT_SHARE = 0.2
HOLDOUT_MAX = 200
MAX_STEPS = 200  # the largest run's optimizer steps at most (the others scale down with their data)
SFT_FORMATS = ("prompt_completion", "messages", "text")


def probe_data(advice, *, fractions: tuple[float, ...] = FRACTIONS, max_steps: int = MAX_STEPS,
               target_loss: float | None = None, target_improvement: float = 0.1,
               device: str = "auto") -> DataCurve:
    """Train one LoRA run per fraction, score the held-out set, fit the curve."""
    from runners import run_plan

    train, heldout, note = _split(advice.request)
    method, settings = _lora_settings(advice)
    biggest = max(1, round(max(fractions) * len(train.rows)))
    per_epoch = math.ceil(biggest / (settings.batch_size * settings.grad_accum))
    epochs = min(settings.epochs, max_steps / per_epoch)
    points = []
    with tempfile.TemporaryDirectory(prefix="tunewise-data-probe-") as tmp:
        for fraction in sorted(fractions):
            n = max(1, round(fraction * len(train.rows)))
            subset = _write_subset(Path(tmp) / f"train-{n}.jsonl", train.rows[:n])
            steps = max(1, math.ceil(n * epochs / (settings.batch_size * settings.grad_accum)))
            plan = replace(advice.plan, method=method, name=f"data-{n}", estimate=None,
                           data=replace(advice.plan.data, train=str(subset), eval=None),
                           settings=settings.replace(max_steps=steps, save_steps=10**9))
            record = run_plan(plan, Path(tmp) / "runs", device=device)
            losses, tokens = heldout_losses(Path(tmp) / "runs" / plan.name, record, heldout, plan, device)
            points.append(Point(n, record.steps, losses, tokens))
    curve = data_curve(points, target_loss=target_loss, target_improvement=target_improvement)
    curve.assumptions = [note, f"{method.value} runs of {epochs:.3g} epoch(s) each (the plan's epochs, capped so "
                         f"the largest run takes at most {max_steps} steps)"] + curve.assumptions
    return curve


def _split(request) -> tuple[Any, Any, str]:
    """(training rows, held-out rows, how the held-out set was chosen)."""
    from tunewise.data import Dataset, load_dataset

    if not request.data:
        raise InputError("--probe-data trains on your data: pass --data", field="probe_data")
    data = load_dataset(request.data, expect=SFT_FORMATS)
    if request.eval_data:
        held = load_dataset(request.eval_data, expect=SFT_FORMATS)
        rows = data.rows
        note = f"held-out: {len(held.rows)} examples of {request.eval_data}"
    else:
        rows = list(data.rows)
        random.Random(0).shuffle(rows)
        k = min(HOLDOUT_MAX, max(1, round(HOLDOUT_SHARE * len(rows))))
        held = Dataset(path=data.path, format=data.format, rows=rows[:k])
        rows = rows[k:]
        note = f"held-out: {k} examples split from {request.data} (seeded), never trained on"
    if len(rows) < 4 * len(FRACTIONS):
        raise InputError(f"--probe-data needs at least {4 * len(FRACTIONS)} training examples besides the "
                         f"held-out ones, got {len(rows)}", path=request.data)
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)  # nested subsets: a prefix of one shuffled order
    return Dataset(path=data.path, format=data.format, rows=shuffled), held, note


def _lora_settings(advice):
    """LoRA with the advisor's LoRA settings (QLoRA if that was the advice)."""
    method = Method.QLORA if advice.method is Method.QLORA else Method.LORA
    cand = advice.candidates.get(method)
    if cand is None:
        raise InputError("no LoRA candidate in the advice", field="probe_data")
    return method, cand.settings


def _write_subset(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def heldout_losses(run_dir: Path, record, heldout, plan, device: str) -> tuple[list[float], list[int]]:
    """Per held-out example: summed token cross-entropy and scored tokens, base + the run's adapter."""
    from peft import PeftModel
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    from runners import quiet_upstream
    from runners._common import RunContext, RunOptions, resolve_runtime
    from runners._data import prepare_sft
    from runners._train import load_tokenizer
    from runners.translate import to_sft
    from tunewise import hub
    from tunewise.records import RunRecord

    adapter_dir = run_dir / record.artifacts["adapter"]
    tokenizer = load_tokenizer(record.base_model)
    settings = plan.settings.replace(precision=record.config["settings"]["precision"])
    prepared = prepare_sft(heldout, tokenizer, settings)
    runtime = resolve_runtime(device, settings.precision, forced=True)
    with quiet_upstream(), tempfile.TemporaryDirectory(prefix="tunewise-heldout-") as tmp:
        ctx = RunContext(plan, settings, Path(tmp), runtime, RunOptions(device=device),
                         RunRecord(name="heldout", method=plan.method.value, base_model=record.base_model))
        upstream = to_sft(ctx, loss=prepared.loss, adapter=True, quantized=plan.method is Method.QLORA)
        model = PeftModel.from_pretrained(hub.load_causal_lm(record.base_model, upstream.load_kwargs), str(adapter_dir))
        dataset = prepared.to_dataset()
        trainer = SFTTrainer(model=model, args=upstream.args, train_dataset=dataset, eval_dataset=dataset,
                             processing_class=tokenizer, preprocess_logits_for_metrics=_loss_sums)
        trainer.remove_callback(PrinterCallback)
        sums = trainer.predict(trainer.eval_dataset).predictions
    return [float(s) for s in sums[:, 0]], [int(c) for c in sums[:, 1]]


def _loss_sums(logits, labels):
    """Per sequence: (summed next-token cross-entropy over scored tokens, scored tokens)."""
    import torch

    if isinstance(logits, tuple):
        logits = logits[0]
    shifted, targets = logits[:, :-1, :].float(), labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(shifted.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    scored = (targets != -100).sum(dim=1)
    return torch.stack([loss.sum(dim=1), scored.to(loss.dtype)], dim=1)

