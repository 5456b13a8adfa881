"""Rebuild the bundled assets.

    python -m tunewise.assets.build data        demo data + retention suite (seconds)
    python -m tunewise.assets.build tokenizer   BPE tokenizer with chat template (seconds)
    python -m tunewise.assets.build model       pretrain the tiny Llama (minutes on 2 CPU cores)
    python -m tunewise.assets.build card        measure quality, write the model card (~1 min)
    python -m tunewise.assets.build all         all four, in that order

Everything derives from --seed (default common.SEED); the same seed rebuilds the same data
bytes.  Model weights are reproducible up to CPU floating-point nondeterminism.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before torch loads OpenMP: idle workers sleep instead of spinning.  On a shared 2-core
# machine spinning threads starve each other (measured 71 vs 446 tokens/s for the same
# training step with 2 threads under load); on an idle machine it costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tunewise.assets import DATA_DIR, MODEL_DIR
from tunewise.assets.build.common import SEED

SUITE_DIR = Path(__file__).resolve().parents[3] / "evals" / "suites"
BUILD_INFO = "build_info.json"


def build_data(seed: int) -> None:
    from evals.suites import DEFAULT_SUITE
    from tunewise.assets.build.datasets import write_data

    for path in write_data(DATA_DIR, SUITE_DIR / DEFAULT_SUITE, seed):
        print(f"wrote {path}")


def build_tokenizer(target: Path) -> None:
    from tunewise.assets.build.tokenizer import build_tokenizer as build
    from tunewise.assets.build.tokenizer import tokenizer_texts

    tok = build(tokenizer_texts(DATA_DIR), target)
    print(f"wrote tokenizer ({len(tok)} tokens) to {target}")


def build_model(seed: int, epochs: int | None) -> None:
    """Tokenizer + pretraining into a scratch folder, then swapped in (never half-written)."""
    from tunewise.assets.build.pretrain import PretrainConfig, pretrain, read_texts

    cfg = PretrainConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
    with tempfile.TemporaryDirectory(dir=MODEL_DIR.parent) as scratch:
        target = Path(scratch) / "model"
        build_tokenizer(target)
        info = pretrain(read_texts(DATA_DIR / "general_corpus.jsonl"), target, target, cfg)
        info["command"] = " ".join(["python -m tunewise.assets.build model", f"--seed {seed}",
                                    *([f"--epochs {epochs}"] if epochs else [])])
        (target / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for path in target.iterdir():
            path.chmod(0o644)  # safetensors writes 0600 temp files; the package must be readable
        if MODEL_DIR.exists():
            shutil.rmtree(MODEL_DIR)
        target.rename(MODEL_DIR)
    print(json.dumps(info, indent=2))


def build_card() -> None:
    from tunewise.assets import demo_data_path, tiny_model_path
    from tunewise.assets.build.card import write_card
    from tunewise.assets.build.quality import format_table, measure

    scores = measure(tiny_model_path(), demo_data_path("domain_eval.jsonl"))
    print(format_table(scores))
    print(f"wrote {write_card(tiny_model_path(), scores)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunewise.assets.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["data", "tokenizer", "model", "card", "all"])
    parser.add_argument("--seed", type=int, default=SEED, help="the one seed everything derives from")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining passes over the corpus")
    args = parser.parse_args(argv)
    if args.what in ("data", "all"):
        build_data(args.seed)
    if args.what == "tokenizer":
        build_tokenizer(MODEL_DIR)
    if args.what in ("model", "all"):
        build_model(args.seed, args.epochs)
    if args.what in ("card", "all"):
        build_card()
    return 0


if __name__ == "__main__":
    sys.exit(main())
