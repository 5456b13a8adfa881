"""Eval overhead: `tunewise eval` wall time vs plain `lm_eval.simple_evaluate` on the same
model, adapter, tasks and settings; plus import/startup costs.  Tiny bundled model, CPU.

    .venv/bin/python benchmarks/eval_overhead.py [--limit 40] [--repeats 3] [--batch-size 8] [--model DIR]

Workload: the bundled demo held-out data (multiple choice + exact-match generation +
preference pairs) and the bundled retention suite, for the base model and one LoRA
adapter (random, seeded, non-zero so it changes the outputs).

- tunewise: `python -m tunewise eval RUN --domain ... --preference ... --retention builtin`
  (loads the base once, applies the adapter to it, writes per-example files, computes
  paired bootstrap/McNemar comparisons, generates the report's example answers).
- direct: what a person would write by hand with lm-eval: two `simple_evaluate(model="hf",
  model_args="pretrained=BASE[,peft=ADAPTER],dtype=float32", ...)` calls over the same
  YAML tasks (TaskManager(include_path=..., include_defaults=False), log_samples on,
  the same batch size, limit and device).

Every measurement is a fresh process; the two sides alternate run by run so background
load hits them alike; medians are reported, wall and CPU (user+sys of the child: on a
shared machine wall time also counts waiting for a core).  Target (issue 5): <= 1.2x.
Thread count is pinned (OMP_NUM_THREADS, default 1) for both sides: with more threads
than free cores, torch's OpenMP workers spin and a tiny model's forward pass becomes
~100x slower, which would swamp what is being measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2


def direct(args: argparse.Namespace) -> None:
    """The hand-written lm-eval baseline (runs in its own process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=args.include, include_defaults=False)
    for peft in (None, args.adapter):
        model_args = f"pretrained={args.model},dtype=float32" + (f",peft={peft}" if peft else "")
        simple_evaluate(model="hf", model_args=model_args, tasks=args.tasks.split(","), batch_size=args.batch_size,
                        device="cpu", limit=args.limit, task_manager=manager, log_samples=True)


def make_run(model: str, root: Path) -> Path:
    """A LoRA run folder on `model` with a seeded, non-zero adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunewise.records import RunRecord

    torch.manual_seed(0)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
                          LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    run = root / "lora"
    peft.save_pretrained(run / "adapter")
    RunRecord(name="lora", method="lora", base_model=model, status="completed",
              artifacts={"adapter": "adapter"}).write(run)
    return run


def tasks_for_direct(model: str, domain: str, prefs: str, root: Path) -> tuple[list[str], list[str]]:
    """The very task YAMLs `tunewise eval` generates (same generation lengths, same versions)."""
    from transformers import AutoTokenizer

    from evals.suites import DEFAULT_SUITE, include_path, suite_tasks
    from evals.tasks import build_data_tasks

    tok = AutoTokenizer.from_pretrained(model)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    taken: set[str] = set()
    specs = build_data_tasks(domain, root / "tasks", taken=taken, count_tokens=count)
    specs += build_data_tasks(prefs, root / "tasks", preference=True, taken=taken, count_tokens=count)
    names = [s.name for s in specs] + suite_tasks(DEFAULT_SUITE)
    return names, [str((root / "tasks").resolve()), include_path(DEFAULT_SUITE)]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    from tunewise.assets import demo_data_path, tiny_model_path

    model = args.model or str(tiny_model_path())
    domain, prefs = str(demo_data_path("domain_eval.jsonl")), str(demo_data_path("preferences_eval.jsonl"))
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(model, root)
        names, include = tasks_for_direct(model, domain, prefs, root)
        common = ["--limit", str(args.limit), "--batch-size", str(args.batch_size)]
        ours = [py, "-m", "tunewise", "eval", str(run), "--domain", domain, "--preference", prefs,
                "--retention", "builtin", "--device", "cpu", "--dtype", "float32", "--out", str(root / "out"), *common]
        theirs = [py, __file__, "--direct", "--model", model, "--adapter", str(run / "adapter"),
                  "--tasks", ",".join(names), *sum((["--include", p] for p in include), []), *common]
        startup = {
            "startup: tunewise --version": [py, "-m", "tunewise", "--version"],
            "startup: tunewise eval --help": [py, "-m", "tunewise", "eval", "--help"],
            "import lm_eval evaluator + HFLM": [py, "-c", "import lm_eval.evaluator, lm_eval.models.huggingface"],
        }
        samples: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for label, cmd in (("tunewise eval (base + 1 LoRA)", ours), ("direct simple_evaluate x2", theirs),
                               *startup.items()):
                samples.setdefault(label, []).append(timed(cmd, env))
    return [(label, statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
            for label, runs in samples.items()]


def table(rows: list[tuple[str, float, float]], args: argparse.Namespace) -> str:
    lines = [f"eval overhead: --limit {args.limit}, batch {args.batch_size}, {args.threads} thread(s), "
             f"median of {args.repeats}",
             f"| {'measurement':<34} | {'wall s':>7} | {'cpu s':>7} |", f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|"]
    lines += [f"| {label:<34} | {wall:>7.2f} | {cpu:>7.2f} |" for label, wall, cpu in rows]
    ours, theirs = rows[0], rows[1]
    wall_ratio, cpu_ratio = ours[1] / theirs[1], ours[2] / theirs[2]
    verdict = "meets" if wall_ratio <= TARGET else "MISSES"
    lines.append(f"| {'ratio tunewise / direct':<34} | {wall_ratio:>6.2f}x | {cpu_ratio:>6.2f}x |")
    lines.append(f"target <= {TARGET}x wall: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="base model folder (default: the bundled tiny model)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    parser.add_argument("--include", action="append", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.direct:
        direct(args)
        return 0
    sys.path.insert(0, str(ROOT))
    rows = measure(args)
    print(table(rows, args))
    if args.json:
        print(json.dumps([{"measurement": r[0], "wall_s": r[1], "cpu_s": r[2]} for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
