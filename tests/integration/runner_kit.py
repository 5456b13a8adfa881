"""Helpers for the runner integration tests: small data files, plans, weight snapshots.

Imported by tests/integration/test_runners_*.py (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunewise.methods import Method
from tunewise.plan import DataSpec, Plan
from tunewise.settings import TrainSettings

# Tiny-model settings: a handful of steps, every step logged, no dropout or warm-up so that
# first-step quantities are exact and two runs with one seed are comparable.
TINY = dict(batch_size=4, seq_len=96, max_steps=3, logging_steps=1, lora_rank=4, lora_dropout=0.0,
            warmup_ratio=0.0, lr_scheduler="constant")
TINY_LR = {Method.LORA: 1e-2, Method.QLORA: 1e-2, Method.FULL: 1e-3, Method.DPO: 1e-2, Method.PROMPT: None}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def arithmetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"What is {a}+{b}? ", "completion": f"{a}+{b}={a + b}."})
    return rows


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"messages": [{"role": "user", "content": f"When does the shop open on day {rng.randint(1, 9)}?"},
                      {"role": "assistant", "content": f"The shop opens at {rng.randint(6, 9)} am."}]}
        for _ in range(n)
    ]


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"What is {a}+{b}? ", "chosen": f"{a}+{b}={a + b}.",
                     "rejected": f"{a}+{b}={a + b + 1}."})
    return rows


def make_plan(model_dir: Path, method: Method, train: Path, name: str | None = None,
              init_from: str | None = None, **settings) -> Plan:
    values = {**TINY, "learning_rate": TINY_LR[method], **settings}
    return Plan(method=method, model=str(model_dir), data=DataSpec(train=str(train)),
                settings=TrainSettings(**values), name=name, init_from=init_from)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def snapshot_callback():
    """A TrainerCallback that copies the model's state dict when training starts and ends."""
    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        def __init__(self):
            self.before: dict = {}
            self.after: dict = {}

        @staticmethod
        def _copy(model):
            return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.before = self._copy(model)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            self.after = self._copy(model)

    return Snapshot()
