"""Parameter arithmetic per model family, module by module as transformers 5 builds them.

Each family function reads a config (through `models._Config`, which turns missing or
malformed fields into one-line InputErrors) and returns the ModelSpec fields.  Defaults for
absent keys are transformers 5.24's config defaults (e.g. `tie_word_embeddings`), so a
config.json and the model built from it agree.

Sources: the modeling files in transformers (`models/<family>/modeling_<family>.py`):
Linear layers `q/k/v/o_proj`, `gate/up/down_proj` (Llama family), fused `qkv_proj` and
`gate_up_proj` (Phi-3), `Conv1D` `c_attn/c_proj/c_fc` (GPT-2), `query_key_value/dense/
dense_h_to_4h/dense_4h_to_h` (GPT-NeoX, Falcon, BLOOM), fused expert tensors
`gate_up_proj [E, 2I, h]` and `down_proj [E, h, I]` plus a router `[E, h]` (Mixtral,
Qwen-MoE); RMSNorm has a weight only, LayerNorm a weight and a bias.
"""

from __future__ import annotations

from typing import Any

# (module path inside a layer, in_features, out_features, has_bias)
Linear = tuple[str, int, int, bool]

# transformers 5 config defaults for tie_word_embeddings (see the module docstring).
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text", "gpt2", "falcon", "bloom"}


def count(family: str, cfg) -> dict[str, Any]:
    """Dispatch to the family's arithmetic; returns ModelSpec keyword arguments."""
    if family in ("gpt2",):
        return _gpt2(cfg)
    if family in ("gpt_neox",):
        return _gpt_neox(cfg)
    if family in ("falcon",):
        return _falcon(cfg)
    if family in ("bloom",):
        return _bloom(cfg)
    return _llama_like(family, cfg)


def _linear_params(linears: list[Linear]) -> int:
    return sum(i * o + (o if bias else 0) for _, i, o, bias in linears)


def _finish(
    *,
    cfg,
    family: str,
    h: int,
    n_layers: int,
    layer_params: int,
    embedding: int,
    final_norm: int,
    linears: list[Linear],
    **fields: Any,
) -> dict[str, Any]:
    vocab = fields.pop("vocab")
    tie = cfg.bool("tie_word_embeddings", family in _TIED_BY_DEFAULT)
    lm_head = 0 if tie else vocab * h
    inactive = fields.pop("inactive_params", 0)
    params = n_layers * layer_params + embedding + final_norm + lm_head + fields.pop("extra_params", 0)
    return {
        "params": params,
        "active_params": params - inactive,
        "n_layers": n_layers,
        "hidden": h,
        "vocab": vocab,
        "tie_embeddings": tie,
        "layer_linears": tuple((name, i, o) for name, i, o, _ in linears),
        "embedding_params": embedding,
        "lm_head_params": lm_head,
        **fields,
    }


def _attention(family: str, cfg, h: int, nh: int, nkv: int, hd: int) -> list[Linear]:
    if family == "phi3":
        return [("self_attn.qkv_proj", h, (nh + 2 * nkv) * hd, False), ("self_attn.o_proj", nh * hd, h, False)]
    if family == "qwen2":
        qkv_bias, o_bias = True, False  # Qwen2 hard-codes bias on q/k/v only
    elif family == "qwen2_moe":
        qkv_bias, o_bias = cfg.bool("qkv_bias", True), False
    elif family in ("mistral", "mixtral"):
        qkv_bias = o_bias = False
    else:
        qkv_bias = o_bias = cfg.bool("attention_bias", False)
    return [
        ("self_attn.q_proj", h, nh * hd, qkv_bias),
        ("self_attn.k_proj", h, nkv * hd, qkv_bias),
        ("self_attn.v_proj", h, nkv * hd, qkv_bias),
        ("self_attn.o_proj", nh * hd, h, o_bias),
    ]


def _gated_mlp(family: str, cfg, h: int, inter: int, prefix: str = "mlp.") -> list[Linear]:
    if family == "phi3":
        return [(prefix + "gate_up_proj", h, 2 * inter, False), (prefix + "down_proj", inter, h, False)]
    bias = cfg.bool("mlp_bias", False) if family == "llama" else False
    return [
        (prefix + "gate_proj", h, inter, bias),
        (prefix + "up_proj", h, inter, bias),
        (prefix + "down_proj", inter, h, bias),
    ]


def _llama_like(family: str, cfg) -> dict[str, Any]:
    """Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi-3 and the MoE families built on them."""
    h = cfg.int("hidden_size")
    n_layers = cfg.int("num_hidden_layers")
    nh = cfg.int("num_attention_heads")
    nkv = cfg.int("num_key_value_heads", default=nh)
    hd = cfg.int("head_dim", default=256 if family in ("gemma", "gemma2", "gemma3_text") else h // nh)
    inter = cfg.int("intermediate_size")
    vocab = cfg.int("vocab_size")
    attention = _attention(family, cfg, h, nh, nkv, hd)
    norms = (4 if family in ("gemma2", "gemma3_text") else 2) * h
    if family in ("qwen3", "qwen3_moe", "gemma3_text"):
        norms += 2 * hd  # q_norm and k_norm over head_dim
    dense_mlp = _gated_mlp(family, cfg, h, inter)
    fields: dict[str, Any] = {
        "n_heads": nh,
        "n_kv_heads": nkv,
        "head_dim": hd,
        "intermediate": inter,
        "vocab": vocab,
        "max_position": cfg.int("max_position_embeddings", default=_default_max_position(family)),
    }
    base = _linear_params(attention) + norms
    if family not in ("mixtral", "qwen2_moe", "qwen3_moe"):
        return _finish(
            cfg=cfg, family=family, h=h, n_layers=n_layers, layer_params=base + _linear_params(dense_mlp),
            embedding=vocab * h, final_norm=h, linears=attention + dense_mlp, **fields,
        )
    return _moe(family, cfg, h, n_layers, attention, base, dense_mlp, fields)


def _moe(family, cfg, h, n_layers, attention, base, dense_mlp, fields) -> dict[str, Any]:
    """Mixtral / Qwen2-MoE / Qwen3-MoE: router [E, h] + fused experts 3*E*I*h per sparse layer."""
    if family == "mixtral":
        n_experts = cfg.int("num_local_experts", default=8)
        top_k = cfg.int("num_experts_per_tok", default=2)
        expert_inter = fields["intermediate"]
        sparse = set(range(n_layers))
    else:
        n_experts = cfg.int("num_experts", default=60 if family == "qwen2_moe" else 128)
        top_k = cfg.int("num_experts_per_tok", default=4 if family == "qwen2_moe" else 8)
        expert_inter = cfg.int("moe_intermediate_size", default=1408 if family == "qwen2_moe" else 768)
        step = cfg.int("decoder_sparse_step", default=1)
        dense_only = set(cfg.ints("mlp_only_layers"))
        sparse = {i for i in range(n_layers) if i not in dense_only and (i + 1) % step == 0}
    one_expert = 3 * expert_inter * h
    moe_block = n_experts * h + n_experts * one_expert  # router + experts
    linears = list(attention)
    shared_inter = 0
    if family == "qwen2_moe":
        shared_inter = cfg.int("shared_expert_intermediate_size", default=5632)
        shared = _gated_mlp(family, cfg, h, shared_inter, prefix="mlp.shared_expert.")
        shared.append(("mlp.shared_expert_gate", h, 1, False))
        moe_block += _linear_params(shared)
        linears += shared
    n_sparse = len(sparse)
    dense_params = (n_layers - n_sparse) * (base + _linear_params(dense_mlp))
    fields.update(
        n_experts=n_experts,
        experts_per_token=top_k,
        moe_intermediate=expert_inter,
        shared_expert_intermediate=shared_inter,
        sparse_layers=n_sparse,
        inactive_params=n_sparse * (n_experts - top_k) * one_expert,
        # Dense layers (if any) are added on top of the uniform sparse-layer count.
        extra_params=dense_params,
    )
    if n_sparse < n_layers:
        linears += [x for x in dense_mlp if x not in linears]
    return _finish(
        cfg=cfg, family=family, h=h, n_layers=n_sparse, layer_params=base + moe_block,
        embedding=fields["vocab"] * h, final_norm=h, linears=linears, **fields,
    ) | {"n_layers": n_layers}


def _default_max_position(family: str) -> int:
    return {"llama": 2048, "phi3": 4096, "gemma": 8192, "gemma2": 8192}.get(family, 32768)


def _gpt2(cfg) -> dict[str, Any]:
    h = cfg.int("n_embd", "hidden_size")
    n_layers = cfg.int("n_layer", "num_hidden_layers")
    nh = cfg.int("n_head", "num_attention_heads")
    inter = cfg.int("n_inner", default=4 * h)
    vocab = cfg.int("vocab_size")
    positions = cfg.int("n_positions", default=1024)
    linears = [
        ("attn.c_attn", h, 3 * h, True),
        ("attn.c_proj", h, h, True),
        ("mlp.c_fc", h, inter, True),
        ("mlp.c_proj", inter, h, True),
    ]
    return _finish(
        cfg=cfg, family="gpt2", h=h, n_layers=n_layers, layer_params=_linear_params(linears) + 4 * h,
        embedding=vocab * h + positions * h, final_norm=2 * h, linears=linears,
        n_heads=nh, n_kv_heads=nh, head_dim=h // nh, intermediate=inter, vocab=vocab,
        max_position=positions, gated_mlp=False,
    )


def _gpt_neox(cfg) -> dict[str, Any]:
    h = cfg.int("hidden_size")
    n_layers = cfg.int("num_hidden_layers")
    nh = cfg.int("num_attention_heads")
    inter = cfg.int("intermediate_size")
    vocab = cfg.int("vocab_size")
    bias = cfg.bool("attention_bias", True)
    linears = [
        ("attention.query_key_value", h, 3 * h, bias),
        ("attention.dense", h, h, bias),
        ("mlp.dense_h_to_4h", h, inter, True),
        ("mlp.dense_4h_to_h", inter, h, True),
    ]
    return _finish(
        cfg=cfg, family="gpt_neox", h=h, n_layers=n_layers, layer_params=_linear_params(linears) + 4 * h,
        embedding=vocab * h, final_norm=2 * h, linears=linears,
        n_heads=nh, n_kv_heads=nh, head_dim=h // nh, intermediate=inter, vocab=vocab,
        max_position=cfg.int("max_position_embeddings", default=2048), gated_mlp=False,
    )


def _falcon(cfg) -> dict[str, Any]:
    h = cfg.int("hidden_size")
    n_layers = cfg.int("num_hidden_layers", "n_layer")
    nh = cfg.int("num_attention_heads", "n_head")
    hd = h // nh
    vocab = cfg.int("vocab_size")
    inter = cfg.int("ffn_hidden_size", default=4 * h)
    bias = cfg.bool("bias", False)
    new_arch = cfg.bool("new_decoder_architecture", False)
    if new_arch:
        nkv = cfg.int("num_kv_heads", "n_head_kv", default=nh)
        qkv_out = (2 * nkv + nh) * hd
    elif cfg.bool("multi_query", True):
        nkv, qkv_out = 1, h + 2 * hd
    else:
        nkv, qkv_out = nh, 3 * h
    linears = [
        ("self_attention.query_key_value", h, qkv_out, bias),
        ("self_attention.dense", h, h, bias),
        ("mlp.dense_h_to_4h", h, inter, bias),
        ("mlp.dense_4h_to_h", inter, h, bias),
    ]
    n_ln = cfg.int("num_ln_in_parallel_attn", default=2 if new_arch else 1)
    layer_norms = 2 if not cfg.bool("parallel_attn", True) else (2 if n_ln == 2 else 1)
    return _finish(
        cfg=cfg, family="falcon", h=h, n_layers=n_layers,
        layer_params=_linear_params(linears) + layer_norms * 2 * h,
        embedding=vocab * h, final_norm=2 * h, linears=linears,
        n_heads=nh, n_kv_heads=nkv, head_dim=hd, intermediate=inter, vocab=vocab,
        max_position=cfg.int("max_position_embeddings", default=2048), gated_mlp=False,
    )


def _bloom(cfg) -> dict[str, Any]:
    h = cfg.int("hidden_size", "n_embed")
    n_layers = cfg.int("n_layer", "num_hidden_layers")
    nh = cfg.int("n_head", "num_attention_heads")
    vocab = cfg.int("vocab_size")
    linears = [
        ("self_attention.query_key_value", h, 3 * h, True),
        ("self_attention.dense", h, h, True),
        ("mlp.dense_h_to_4h", h, 4 * h, True),
        ("mlp.dense_4h_to_h", 4 * h, h, True),
    ]
    # ALiBi has no position limit in the config; BLOOM was trained at 2048 tokens.
    return _finish(
        cfg=cfg, family="bloom", h=h, n_layers=n_layers, layer_params=_linear_params(linears) + 4 * h,
        embedding=vocab * h + 2 * h, final_norm=2 * h, linears=linears,  # + word_embeddings_layernorm
        n_heads=nh, n_kv_heads=nh, head_dim=h // nh, intermediate=4 * h, vocab=vocab,
        max_position=cfg.int("seq_length", default=2048), gated_mlp=False,
    )
