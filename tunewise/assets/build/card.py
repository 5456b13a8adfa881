"""The tiny model's card (README.md in its folder): recipe, rebuild command, measured quality."""

from __future__ import annotations

import json
from pathlib import Path

from tunewise.assets.build.quality import format_table
from tunewise.atomic import atomic_write_text

TEMPLATE = """# tiny-llama (tunewise's bundled base model)

A {params:,}-parameter Llama-architecture causal LM with its own byte-level BPE tokenizer
({vocab} tokens), pretrained from scratch on `tunewise/assets/data/general_corpus.jsonl`
(synthetic: small-number arithmetic, counting, comparisons, a few hundred simple facts,
English and Chinese).  It exists so that tunewise's demo and tests run offline on a CPU
and so that fine-tuning has general skills to *forget*.  It knows nothing about the demo
domain (the fictional shop "Pebble & Pine"); that is what fine-tuning teaches it.

## Rebuild

    {command}
    python -m tunewise.assets.build card      # re-measure and rewrite this card

Seed: {seed}.  Data bytes are identical for the same seed; weights are reproducible up to
CPU floating-point nondeterminism.

## Recipe

| | |
|---|---|
| architecture | Llama: {layers} layers, hidden {hidden}, MLP {inter}, {heads} heads ({kv} KV heads), tied embeddings, context {max_position} (pretrained on {block}-token rows) |
| training | transformers Trainer, AdamW lr {lr} cosine, warmup {warmup}, batch {batch}x{block} tokens, {epochs} passes over the corpus |
| tokens seen | {tokens:,} in {steps} steps |
| loss | {first_loss:.3f} -> {final_loss:.3f} |
| wall time | {seconds:.0f} s on {threads} CPU threads (shared machine; other jobs were running) |

## Prompt format

Chat template (in tokenizer_config.json): `<|user|>\\n{{question}}</s>\\n<|assistant|>\\n{{answer}}</s>\\n`.
`</s>` is EOS and ends every turn, so generation stops after the answer.  The retention
suite asks `Question: {{q}}\\nAnswer:` (Chinese: `问题：{{q}}\\n答案：`) and scores each choice.

## Measured quality

lm-eval multiple choice by log-likelihood, 0-shot, metric `acc`; `tw_*` tasks are the
retention suite `evals/suites/tw_general`, `tw_domain_mc` is `domain_eval.jsonl` scored
after its chat-template `prompt`.  Targets: well above chance on every retention task,
near chance on the domain.  Reproduce: `python benchmarks/tiny_model_quality.py`.

```
{table}
```
"""


def write_card(model_dir: Path, scores: dict[str, dict]) -> Path:
    info = json.loads((model_dir / "build_info.json").read_text(encoding="utf-8"))
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    cfg = info["config"]
    text = TEMPLATE.format(
        params=info["parameters"], vocab=config["vocab_size"], command=info["command"], seed=cfg["seed"],
        layers=cfg["num_layers"], hidden=cfg["hidden_size"], inter=cfg["intermediate_size"],
        heads=cfg["num_heads"], kv=cfg["num_kv_heads"], block=cfg["block"], max_position=cfg["max_position"], lr=cfg["learning_rate"],
        warmup=cfg["warmup_steps"], batch=cfg["batch_size"], epochs=cfg["epochs"], tokens=info["train_tokens"],
        steps=info["steps"], first_loss=info["first_loss"], final_loss=info["final_loss"],
        seconds=info["train_seconds"], threads=info["torch_threads"], table=format_table(scores),
    )
    return atomic_write_text(model_dir / "README.md", text)
