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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEQ = 128
BATCHES = (1, 8)
METHODS = ("full", "lora")


def worker(method: str, batch: int, steps: int, out: str) -> None:
    from benchmarks.runner_overhead import run_tunewise
    from tunewise.assets import tiny_model_path

    run = run_tunewise(method, str(tiny_model_path()), steps, Path(out), batch_size=batch, seq_len=SEQ,
                       gradient_checkpointing=False)
    print(json.dumps({"cpu_s_per_step": run["cpu_s"] / steps}))


def measure(method: str, batch: int, steps: int) -> float:
    from benchmarks.runner_overhead import in_fresh_process

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = ["--worker", method, str(batch), "--steps", str(steps)]
    return in_fresh_process(__file__, args, f"{method} batch {batch}", env)["cpu_s_per_step"]


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
