"""The tiny model's tokenizer: byte-level BPE (the `tokenizers` library) with a chat template.

Special tokens: <pad> (0), <s> (1, bos, never added automatically), </s> (2, eos: ends
every chat turn and every pretraining document), <|system|>, <|user|>, <|assistant|>.
Byte-level, so any text (including Chinese) encodes without an unknown token.  Trained on
the general corpus plus the domain and preference *training* text: a real tokenizer covers
the words of its users' domain; knowing a word is not knowing the shop's facts.
"""

from __future__ import annotations

from pathlib import Path

from tunewise.assets.build.common import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    ROLE_TOKENS,
    SPECIAL_TOKENS,
    read_jsonl,
)

VOCAB_SIZE = 3072
MAX_LENGTH = 256


def tokenizer_texts(data_dir: Path) -> list[str]:
    """Training text: the general corpus plus the domain and preference *train* files."""
    texts = [row["text"] for row in read_jsonl(data_dir / "general_corpus.jsonl")]
    for row in read_jsonl(data_dir / "domain_train_messages.jsonl"):
        texts += [m["content"] for m in row["messages"]]
    for row in read_jsonl(data_dir / "preferences_train.jsonl"):
        texts += [row["prompt"], row["chosen"], row["rejected"]]
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A `tokenizers.Tokenizer` trained on `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def wrap(tok):
    """The transformers tokenizer (what AutoTokenizer loads back) around a trained one."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS.values()),
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )


def build_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = VOCAB_SIZE):
    """Train, wrap and save to out_dir (tokenizer.json + tokenizer_config.json)."""
    hf_tok = wrap(train_tokenizer(texts, vocab_size))
    # save_jinja_files=False keeps the chat template inside tokenizer_config.json, where
    # every loader (older transformers, lm-eval, other tools) looks for it.
    hf_tok.save_pretrained(str(out_dir), save_jinja_files=False)
    return hf_tok
