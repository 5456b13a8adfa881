"""Activation memory: the tensors autograd keeps between forward and backward.

Counted per token and per decoder layer from what each op saves in PyTorch (the same
accounting as Korthikanti et al., arXiv:2205.05198 §4.1, which gives sbh(34 + 5as/h) for a
GPT layer; we count a Llama-style layer op by op instead of using the constant 34, because
the paper assumes GELU, d_ff = 4h, MHA and dropout):

* RMSNorm (HF): the fp32 upcast of its input (4h bytes), plus the normalised 16-bit tensor
  (a*h) when the norm weight trains.  LayerNorm: its input (a*h).
* A linear layer saves its input when its weight trains (weight gradient).  A frozen linear
  saves nothing; a LoRA adapter on it saves the input of lora_A, plus a dropout mask and a
  dropped copy when lora_dropout > 0 (one per adapted module: PEFT has a dropout per module).
* Attention (SDPA/FlashAttention): q, k, v and the output (k, v at query width: transformers
  repeats KV heads when a padding mask is present), plus fp32 log-sum-exp per head.  Eager
  attention also keeps the b*heads*s*s probabilities in fp32 (softmax output) and 16 bits.
* Gated MLP: the activation input, its output and the up projection (3*a*I); plain GELU MLP
  saves its input (a*I); GPT-2's Python "gelu_new" keeps ~4 intermediates.
* MoE: each token's top-k expert copies of the MLP tensors, plus the shared expert.
* torch.compile (inductor's min-cut partitioner) recomputes pointwise ops in backward: a
  norm keeps only its 16-bit input and the fused SwiGLU only gate and up.
* Full gradient checkpointing keeps only each layer's input (a*h) and recomputes one layer
  at a time in backward (Korthikanti's "full recomputation", 2sbh per layer).
* Logits: b*s*V in 16 bits, then the HF loss upcasts to fp32 and log_softmax keeps an fp32
  copy; its backward holds two more fp32 b*s*V buffers: LOGITS_BYTES per token per vocab entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.models import ModelSpec

# Bytes per (token x vocab entry) at the loss peak: 16-bit logits (2) + fp32 log_softmax kept
# for backward (4) + fp32 grad of log_softmax output and input during backward (4 + 4).
LOGITS_BYTES_HF = 14.0
# Chunked cross-entropy (torchtune CEWithChunkedOutputLoss): the 16-bit logit chunks kept for
# backward plus one fp32 chunk at a time (8 chunks -> 4/8 byte per element).
LOGITS_BYTES_CHUNKED = 2.5

_ATTN_IN = ("q_proj", "k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value")
_ATTN_OUT = ("o_proj", "attn.c_proj", "attention.dense", "self_attention.dense")
_MLP_MID = ("down_proj", "mlp.c_proj", "dense_4h_to_h")


@dataclass(frozen=True)
class ActivationInputs:
    """What the activation count depends on besides the model."""

    tokens: int  # sequences x sequence length held in one forward (DPO: chosen + rejected)
    seq_len: int
    act_bytes: int  # 2 for 16-bit activations, 4 for fp32
    full_train: bool  # every weight trains (full fine-tuning) vs frozen base + adapters
    adapted: tuple[str, ...] = ()  # per-layer module paths with a LoRA adapter
    lora_dropout: bool = True
    checkpointing: bool = True
    attention: str = "sdpa"  # "sdpa" | "flash" | "eager"
    logits_bytes: float = LOGITS_BYTES_HF
    lm_head_trains: bool = False
    compiled: bool = False  # torch.compile fuses pointwise ops and recomputes them in backward


def input_group(path: str) -> str:
    """Which shared input feeds a per-layer linear module."""
    leaf = path.rsplit(".", 1)[-1]
    if leaf in _ATTN_IN:
        return "attn_in"
    if any(path.endswith(x) for x in _ATTN_OUT):
        return "attn_out"
    if any(path.endswith(x) for x in _MLP_MID):
        return "mlp_mid"
    return "mlp_in"


def _group_width(spec: ModelSpec, group: str) -> int:
    return {
        "attn_in": spec.hidden,
        "attn_out": spec.n_heads * spec.head_dim,
        "mlp_in": spec.hidden,
        "mlp_mid": spec.intermediate,
    }[group]


def layer_bytes_per_token(spec: ModelSpec, inp: ActivationInputs) -> float:
    """Bytes one decoder layer keeps per token without checkpointing (see module doc)."""
    a, h = inp.act_bytes, spec.hidden
    q_width = spec.n_heads * spec.head_dim
    rms = spec.family not in ("gpt2", "gpt_neox", "falcon", "bloom")
    n_norms = 4 if spec.family in ("gemma2", "gemma3_text") else 2
    norm = (4 * h + (a * h if inp.full_train else 0)) if rms and not inp.compiled else a * h
    total = n_norms * norm
    if spec.family in ("qwen3", "qwen3_moe", "gemma3_text"):
        total += 4 * (q_width + spec.n_kv_heads * spec.head_dim)  # q_norm / k_norm fp32 inputs
    # Attention kernel: q, k, v (repeated to query width), output, fp32 log-sum-exp.
    total += a * 4 * q_width + 4 * spec.n_heads
    if inp.attention == "eager":
        total += (4 + a) * spec.n_heads * inp.seq_len
    total += _mlp_bytes(spec, a, inp.compiled)
    total += _linear_inputs(spec, inp)
    if spec.family == "gpt2":
        total += 2 * h  # resid dropout masks (resid_pdrop 0.1 in GPT-2 configs)
    return float(total)


def _mlp_bytes(spec: ModelSpec, a: int, compiled: bool = False) -> float:
    if spec.is_moe:
        k, inter = spec.experts_per_token, spec.moe_intermediate
        routed = k * (a * spec.hidden + 3 * a * inter)  # gathered inputs + gate/act/up per expert
        shared = 3 * a * spec.shared_expert_intermediate
        return routed + shared
    if spec.gated_mlp:  # compiled: the fused silu(gate) * up keeps only its two inputs
        return (2 if compiled else 3) * a * spec.intermediate
    gelu_saves = 4 if spec.family == "gpt2" else 1
    return gelu_saves * a * spec.intermediate


def _linear_inputs(spec: ModelSpec, inp: ActivationInputs) -> float:
    """Inputs saved for weight gradients (full) or by LoRA adapters (frozen base)."""
    a = inp.act_bytes
    if inp.full_train:
        groups = {input_group(p) for p, _, _ in spec.layer_linears}
        if spec.is_moe:
            groups.discard("mlp_in")
            groups.discard("mlp_mid")
            routed_mid = spec.experts_per_token * a * spec.moe_intermediate
            return sum(a * _group_width(spec, g) for g in groups) + routed_mid
        return sum(a * _group_width(spec, g) for g in groups)
    saved = 0.0
    shared_groups: set[str] = set()
    for path in inp.adapted:
        if path.startswith("experts."):
            saved += spec.experts_per_token * a * spec.hidden * (3 if inp.lora_dropout else 1)
            continue
        group = input_group(path)
        width = _group_width(spec, group)
        if inp.lora_dropout:
            saved += (a + 1) * width  # dropped copy + bool mask, per adapted module
        else:
            shared_groups.add(group)
    saved += sum(a * _group_width(spec, g) for g in shared_groups)
    return saved


def activation_bytes(spec: ModelSpec, inp: ActivationInputs) -> dict[str, float]:
    """Peak activation bytes: stored layers, the loss/logits spike, one recomputed layer."""
    per_layer = layer_bytes_per_token(spec, inp) * inp.tokens
    h = spec.hidden
    if inp.checkpointing:
        stored = spec.n_layers * inp.act_bytes * h * inp.tokens
        recompute = per_layer  # one layer rematerialised at a time in backward
    else:
        stored = spec.n_layers * per_layer
        recompute = 0.0
    head = (4 * h + inp.act_bytes * h * (2 if inp.lm_head_trains else 1)) * inp.tokens
    logits = inp.logits_bytes * spec.vocab * inp.tokens
    return {"stored": stored + head, "logits": logits, "recompute": recompute}
