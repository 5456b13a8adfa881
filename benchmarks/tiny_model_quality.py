"""Quality of the bundled tiny base model: retention tasks and the domain eval vs chance.

    .venv/bin/python benchmarks/tiny_model_quality.py [--model DIR] [--limit N] [--batch-size 32]

Every task is lm-eval multiple choice scored by log-likelihood, 0-shot, metric acc:
the tw_* retention suite (evals/suites/tw_general) and the demo domain eval
(tunewise/assets/data/domain_eval.jsonl, candidates scored after the chat-template
prompt).  Targets (issue 3): well above chance on every retention task, near chance on
the domain (the base model must not know the fictional shop).  `verdict` applies those
targets: retention acc - chance >= 0.15 -> ok; domain acc - chance <= 0.10 -> ok.
Offline; CPU, 2 threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tunewise/assets/build/__main__.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RETENTION_MARGIN, DOMAIN_MARGIN = 0.15, 0.10


def main(argv: list[str] | None = None) -> int:
    import torch

    from tunewise.assets import demo_data_path, tiny_model_path
    from tunewise.assets.build.quality import DOMAIN_TASK, format_table, measure

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled tiny model)")
    parser.add_argument("--limit", type=int, default=None, help="first N items per task (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.perf_counter()
    scores = measure(args.model or tiny_model_path(), demo_data_path("domain_eval.jsonl"),
                     limit=args.limit, batch_size=args.batch_size)
    table = format_table(scores).splitlines()
    print(table[0] + "  verdict")
    for line, (task, s) in zip(table[1:], scores.items(), strict=True):
        above = s["acc"] - s["chance"]
        ok = above <= DOMAIN_MARGIN if task == DOMAIN_TASK else above >= RETENTION_MARGIN
        print(f"{line}  {'ok' if ok else 'MISSED'}")
    print(f"\n({time.perf_counter() - start:.0f} s wall incl. loading)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
