"""Builders of the bundled assets (run: python -m tunewise.assets.build --help).

    common        seed, chat format, deterministic JSONL
    facts/skills  general facts the base model learns; general  the pretraining corpus
    retention     the lm-eval retention suite (evals/suites/tw_general)
    shop/domain   the fictional shop's knowledge; its train/eval/ladder files
    preferences   prompt/chosen/rejected pairs
    datasets      writes every data file from one seed
    tokenizer     byte-level BPE with chat template
    pretrain      the tiny Llama, trained with transformers' Trainer
    quality/card  measured quality and the model card
"""
