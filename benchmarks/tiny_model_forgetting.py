"""Is forgetting measurable on the bundled tiny model?  LoRA and full SFT on the demo domain.

    .venv/bin/python benchmarks/tiny_model_forgetting.py [--epochs 2] [--lora-lr 2e-3]
        [--full-lr 2e-4] [--methods lora,full] [--limit N]

Fine-tunes the bundled base on tunewise/assets/data/domain_train_messages.jsonl with trl's
SFTTrainer (batch 16, cosine, 10 warmup steps, seed 0; LoRA r=8, alpha=16, all linear
layers, merged for scoring), then scores base and each variant with the same lm-eval
multiple-choice tasks as benchmarks/tiny_model_quality.py.  It checks the asset's
purpose, not tunewise's runners: the domain eval must rise clearly after fine-tuning, and
the tw_* retention tasks must move by more than their stderr (forgetting is measurable).
Prints one table: acc per task for base and each method, chance, and the change.
Offline; CPU, 2 threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tunewise/assets/build/__main__.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def finetune(model_dir: Path, method: str, lr: float, epochs: float):
    """The fine-tuned model (LoRA merged into the base), trained with trl's SFTTrainer."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunewise.assets import demo_data_path

    data = load_dataset("json", data_files=str(demo_data_path("domain_train_messages.jsonl")), split="train")
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(str(model_dir)),
            args=SFTConfig(output_dir=scratch, per_device_train_batch_size=16, num_train_epochs=epochs,
                           learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=10, logging_steps=50,
                           save_strategy="no", report_to="none", use_cpu=True, max_length=256, seed=0,
                           disable_tqdm=True),
            train_dataset=data,
            processing_class=AutoTokenizer.from_pretrained(str(model_dir)),
            peft_config=lora if method == "lora" else None,
        )
        trainer.train()
    model = trainer.model
    return model.merge_and_unload() if method == "lora" else model


def main(argv: list[str] | None = None) -> int:
    import torch

    from tunewise.assets import demo_data_path, tiny_model_path
    from tunewise.assets.build.quality import measure

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--full-lr", type=float, default=2e-4)
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--limit", type=int, default=None, help="first N items per task (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    base_dir, eval_path = tiny_model_path(), demo_data_path("domain_eval.jsonl")
    columns = {"base": measure(base_dir, eval_path, limit=args.limit)}
    for method in args.methods.split(","):
        lr = args.lora_lr if method == "lora" else args.full_lr
        start = time.perf_counter()
        model = finetune(base_dir, method, lr, args.epochs)
        print(f"{method}: lr {lr}, {args.epochs} epochs, trained in {time.perf_counter() - start:.0f} s", flush=True)
        columns[f"{method}"] = measure(base_dir, eval_path, model=model, limit=args.limit)
    names = list(columns)
    print(f"\n{'task':<14} {'n':>4} {'chance':>7} " + " ".join(f"{n:>7}" for n in names)
          + " " + " ".join(f"{'d_' + n:>8}" for n in names[1:]) + f" {'stderr':>7}")
    for task, base in columns["base"].items():
        accs = [columns[n][task]["acc"] for n in names]
        deltas = [a - accs[0] for a in accs[1:]]
        print(f"{task:<14} {base['n']:>4} {base['chance']:>7.3f} " + " ".join(f"{a:>7.3f}" for a in accs)
              + " " + " ".join(f"{d:>+8.3f}" for d in deltas) + f" {base['stderr']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
