"""Bundled demo assets: a tiny base model and synthetic data, all made by code in this repo.

Everything here is generated deterministically by `python -m tunewise.assets.build`
(see `tunewise/assets/build/`).  Import-light on purpose: no torch, no transformers.

    tiny_model_path()        folder loadable offline by AutoModelForCausalLM / AutoTokenizer
    demo_data_path(name)     one generated JSONL file under tunewise/assets/data/
    DEMO_DATA                every shipped data file name with a one-line description

Prompt format (the same everywhere): the tokenizer's chat template renders
`<|user|>\\n{question}</s>\\n<|assistant|>\\n{answer}</s>\\n`.  The `prompt` strings in the
prompt/completion, preference and domain-eval files are that template already rendered up
to and including `<|assistant|>\\n`, so SFT on `messages`, SFT on prompt/completion and
the domain eval all see the same tokens.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DATA_DIR = ASSETS_DIR / "data"
MODEL_DIR = ASSETS_DIR / "tiny-llama"

DEMO_DATA: dict[str, str] = {
    "general_corpus.jsonl": "pretraining text of the tiny base ({text}): arithmetic, counting, "
    "comparisons, simple facts, English and Chinese",
    "domain_train_messages.jsonl": "customer support of the fictional shop, chat form ({messages})",
    "domain_train_prompt_completion.jsonl": "the same examples as {prompt, completion}",
    "domain_eval.jsonl": "held-out support questions: {prompt, completion} plus multiple choice "
    "{question, choices, answer} and exact match {answer_text}",
    "domain_50.jsonl": "data-size ladder: 50 training examples (chat form)",
    "domain_500.jsonl": "data-size ladder: 500 training examples (chat form)",
    "domain_all.jsonl": "data-size ladder: every training example (chat form)",
    "preferences_train.jsonl": "preference pairs {prompt, chosen, rejected}",
    "preferences_eval.jsonl": "held-out preference pairs",
}


def tiny_model_path() -> Path:
    """The bundled tiny Llama (config, safetensors weights, tokenizer with chat template)."""
    if not (MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the bundled tiny model is missing from {MODEL_DIR}; "
            "rebuild it with: python -m tunewise.assets.build model"
        )
    return MODEL_DIR


def demo_data_path(name: str) -> Path:
    """Path of one bundled data file, e.g. demo_data_path("domain_eval.jsonl")."""
    if name not in DEMO_DATA:
        known = ", ".join(sorted(DEMO_DATA))
        raise KeyError(f"unknown demo data file {name!r}; known: {known}")
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: python -m tunewise.assets.build data")
    return path
