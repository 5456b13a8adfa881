"""The fixed per-step overhead of CPU training (`step_overhead_s` of the `cpu` catalog row).

    .venv/bin/python benchmarks/step_overhead.py [--steps 30] [--repeats 2]

`tunewise run` trains the bundled tiny model (1.18M parameters, where FLOPs are negligible)
for `--steps` steps at seq 128 and micro-batch 1 and 8, one torch thread (as the runners
use for models under 50M parameters), each run in a fresh process.  Per run: CPU seconds
of `trainer.train()` (`record.extra["train_cpu_s"]`, not wall time: a shared machine's
waiting does not count) divided by the steps; best of the repeats.  A straight line
through the two batch sizes, seconds per step = overhead + per-token cost x tokens, gives
the overhead at zero tokens: Python, op dispatch and Trainer bookkeeping per micro-step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEQ = 128
BATCHES = (1, 8)
METHODS = ("full", "lora")


def worker(method: str, batch: int, steps: int, out: str) -> None:
    from benchmarks.runner_overhead import data_file
    from runners import run_plan
    from tunewise.assets import tiny_model_path
    from tunewise.methods import Method
    from tunewise.plan import DataSpec, Plan
    from tunewise.settings import TrainSettings

    settings = TrainSettings(max_steps=steps, batch_size=batch, seq_len=SEQ, learning_rate=1e-4, warmup_ratio=0.0,
                             lr_scheduler="constant", logging_steps=10, seed=42, gradient_checkpointing=False)
    plan = Plan(method=Method(method), model=str(tiny_model_path()), data=DataSpec(train=data_file(method)),
                settings=settings)
    record = run_plan(plan, Path(out), device="cpu")
    print(json.dumps({"cpu_s_per_step": record.extra["train_cpu_s"] / steps}))


def measure(method: str, batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--worker", method, str(batch), "--steps", str(steps), "--out", tmp]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{method} batch {batch} failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])["cpu_s_per_step"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.steps, args.out)
        return 0
    print(f"{'method':<6} {'batch':>5} {'CPU s/step (best)':>18}")
    for method in METHODS:
        best = {b: min(measure(method, b, args.steps) for _ in range(args.repeats)) for b in BATCHES}
        for b in BATCHES:
            print(f"{method:<6} {b:>5} {best[b]:>18.4f}")
        slope = (best[BATCHES[1]] - best[BATCHES[0]]) / ((BATCHES[1] - BATCHES[0]) * SEQ)
        overhead = best[BATCHES[0]] - slope * BATCHES[0] * SEQ
        print(f"{method:<6} overhead at zero tokens: {overhead:.4f} s per step ({slope * 1e6:.2f} us per token)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
