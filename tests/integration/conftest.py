"""Integration fixtures: a tiny causal LM on CPU.

`tiny_model_dir` is the bundled tiny model (tunewise/assets) when it is present; before
it exists, a random-weight tiny Llama with its own BPE tokenizer is built once per
session so runner and eval mechanics can be tested.

    .venv/bin/python -m pytest tests/integration
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{% if m['role'] == 'assistant' %}{% generation %}"
    "{{ m['content'] }}{{ eos_token }}{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _bundled_model() -> Path | None:
    try:
        from tunewise.assets import tiny_model_path

        path = Path(tiny_model_path())
    except Exception:
        return None
    return path if (path / "model.safetensors").exists() else None


def build_random_tiny_llama(out: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a 512-token BPE tokenizer; weights random (seeded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"{a}+{b}={a + b}. The shop opens at {a} am. Refunds take {b} days." for a in range(10) for b in range(10)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    bundled = _bundled_model()
    if bundled is not None:
        return bundled
    return build_random_tiny_llama(tmp_path_factory.mktemp("tiny-random-llama"))


@pytest.fixture(scope="session")
def random_tiny_model_dir(tmp_path_factory) -> Path:
    """Always the random-weight model (for mechanics that must not depend on the bundle)."""
    return build_random_tiny_llama(tmp_path_factory.mktemp("tiny-random-llama-explicit"))
