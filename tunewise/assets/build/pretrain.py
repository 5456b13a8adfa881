"""Pretrain the tiny Llama on the general corpus with transformers' Trainer (CPU).

Documents are tokenized, each ended with EOS, and packed into BLOCK-token rows.  Every
epoch packs the documents in a fresh seeded order, so the model does not see the same
block boundaries twice; the packed rows of all epochs form one dataset that Trainer walks
once (num_train_epochs=1), shuffled by its own seed.  Loss: next-token cross-entropy on
every token (labels = input_ids).  Saves safetensors only.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tunewise.assets.build.common import SEED


@dataclass(frozen=True)
class PretrainConfig:
    """The whole recipe; its values are written into the model card."""

    seed: int = SEED
    epochs: int = 12  # measured: facts are learned after ~8 passes, ~85-95% after 12
    block: int = 128  # pretraining rows; the demo's examples are shorter than this
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention, as in current Llamas
    max_position: int = 256  # the context the demo fine-tunes with
    threads: int = 2


def model_config(cfg: PretrainConfig, tok):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def packed_blocks(texts: list[str], tok, cfg: PretrainConfig) -> list[list[int]]:
    """Token blocks of length cfg.block from `epochs` seeded shuffles of the documents."""
    docs = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if not ids or ids[-1] != tok.eos_token_id:
            ids.append(tok.eos_token_id)  # chat documents already end with EOS
        docs.append(ids)
    rng = random.Random(cfg.seed)
    blocks = []
    for _ in range(cfg.epochs):
        order = list(range(len(docs)))
        rng.shuffle(order)
        stream = [t for i in order for t in docs[i]]
        blocks += [stream[i : i + cfg.block] for i in range(0, len(stream) - cfg.block + 1, cfg.block)]
    return blocks


def training_args(cfg: PretrainConfig, out_dir: Path):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        adam_beta2=0.98,
        max_grad_norm=1.0,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def pretrain(texts: list[str], tokenizer_dir: Path, out_dir: Path, cfg: PretrainConfig) -> dict:
    """Train and save model + generation config to out_dir; return the training summary."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import (
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        GenerationConfig,
        LlamaForCausalLM,
        Trainer,
        set_seed,
    )

    torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    blocks = packed_blocks(texts, tok, cfg)
    model = LlamaForCausalLM(model_config(cfg, tok))
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=model,
            args=training_args(cfg, Path(scratch)),
            train_dataset=Dataset.from_dict({"input_ids": blocks}),
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        )
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=False, max_new_tokens=64,
    )
    model.save_pretrained(str(out_dir))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_tokens": len(blocks) * cfg.block,
        "steps": result.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }


def read_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]
