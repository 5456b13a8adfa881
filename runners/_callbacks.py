"""Trainer callbacks shared by every training runner.

- `MetricsLog`: one JSON line per logging step in `metrics.jsonl` (loss, lr, grad norm,
  tokens/s, DPO reward margins/accuracies, RLHF reward and KL); stops training on a
  non-finite loss.
- `StopOnSignal`: SIGINT/SIGTERM finish the current step, save a checkpoint and stop, so
  the run can be resumed; a second SIGINT aborts at once.
- `Progress`: a progress bar on a terminal, a compact line per logging step otherwise.

Callbacks are transformers' documented extension point (`TrainerCallback`), so they are
subclassed; trainers and configs never are.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

# Upstream log keys -> the names metrics.jsonl uses (stable for readers of the file).
LOG_KEYS = {
    "loss": "loss",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
    "mean_token_accuracy": "token_accuracy",
    "rewards/margins": "reward_margin",
    "rewards/accuracies": "reward_accuracy",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    # rlhf policy stage (trl RLOOTrainer): reward-model score of the samples, KL to the reference
    "reward": "reward",
    "reward_std": "reward_std",
    "kl": "kl",
    "entropy": "entropy",
    "completions/mean_length": "completion_length",
    # rlhf reward-model stage (trl RewardTrainer): pairs ranked right, chosen-minus-rejected score
    "accuracy": "rm_accuracy",
    "margin": "rm_margin",
}


def say(message: str) -> None:
    """A log line for the person running tunewise (stderr; stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)


class MetricsLog(TrainerCallback):
    """Append a row to metrics.jsonl at every logging step; stop on a NaN/inf loss."""

    def __init__(self, path: Path, *, write: bool) -> None:
        self.path = path
        self.write = write
        self.rows: list[dict[str, Any]] = []
        self.nan: dict[str, Any] | None = None
        self._last_time = 0.0
        self._last_tokens = 0
        self.planned_steps: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen
        self.planned_steps = state.max_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True  # the last step is always logged: final_loss is the end's loss
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # the end-of-training summary ("train_loss", runtime...)
            return
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen
        elapsed = max(now - self._last_time, 1e-9)
        row: dict[str, Any] = {"step": state.global_step}
        for key, name in LOG_KEYS.items():
            if key in logs:
                row[name] = _plain(logs[key])
        row["tokens"] = int(tokens)
        row["tokens_per_s"] = round((tokens - self._last_tokens) / elapsed, 2)
        self._last_time, self._last_tokens = now, tokens
        self.rows.append(row)
        if self.write:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        if not _finite(row.get("loss")) or ("grad_norm" in row and not _finite(row["grad_norm"])):
            # Every rank sees the same (gathered) loss, so every rank stops at the same step.
            self.nan = row
            control.should_training_stop = True
        return control


class StopOnSignal(TrainerCallback):
    """Turn SIGINT/SIGTERM into "save a checkpoint at the end of this step and stop"."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.received = signal.Signals(signum).name
        say(f"{self.received} received: finishing this step, saving a checkpoint, then stopping")

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Progress(TrainerCallback):
    """A tqdm bar when stderr is a terminal; otherwise one short line per logging step."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.label, unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not self.enabled or "loss" not in logs:
            return
        text = f"loss {logs['loss']:.4g}  lr {logs.get('learning_rate', 0):.2g}"
        if "rewards/margins" in logs:
            text += f"  margin {logs['rewards/margins']:.3g}"
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        else:
            say(f"{self.label} step {state.global_step}/{state.max_steps}  {text}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 8)
    return value if not isinstance(value, float) else str(value)  # JSON has no NaN: "nan"


def _finite(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):  # "nan"/"inf" after _plain
        return False
    return math.isfinite(float(value))
