"""Activation memory: the tensors autograd keeps between forward and backward.

Counted per token and per decoder layer from what each op saves in PyTorch (the same
accounting as Korthikanti et al., arXiv:2205.05198 §4.1, which gives sbh(34 + 5as/h) for a
GPT layer; we count a Llama-style layer op by op instead of using the constant 34, because
the paper assumes GELU, d_ff = 4h, MHA and dropout).  a = compute bytes (2, fp32: 4).

* Residual stream: a bytes, except full fine-tuning under autocast (amp/fp16), whose fp32
  master weights (embedding, norms) keep the stream in fp32.
* RMSNorm (HF): the fp32 upcast of its input (4h), plus the normalised tensor in the
  stream dtype when the norm weight trains.  LayerNorm: its input.
* A linear layer saves its input when its weight trains (weight gradient).  Under autocast
  each linear fed by an fp32 stream saves its own 16-bit cast (q, k, v, gate, up: one each).
  A frozen linear saves nothing (bitsandbytes' MatMul4Bit keeps only the packed weight).
* LoRA on a frozen linear (PEFT 0.21 `Linear.forward`): x is cast to the adapter dtype
  (fp32 adapters: an fp32 copy per module), then dropout, then lora_A, which saves its input
  in the dtype it computes in (the autocast dtype under amp, else the adapter dtype).
  Dropout keeps a 1-byte mask with CUDA's fused kernel (`native_dropout`) and its noise
  tensor in the input dtype with PyTorch's composite `_dropout_impl` (CPU, MPS).  Without
  dropout, adapters in the compute dtype share each input; others save one cast each.
  trl's DPO/reward trainers disable dropout (`disable_dropout=True`).
* Attention (SDPA/FlashAttention): q, k, v and the output (k, v at query width: transformers
  repeats KV heads when a padding mask is present), plus fp32 log-sum-exp per head.  Eager
  attention also keeps the b*heads*s*s probabilities in fp32 (softmax output) and 16 bits.
* Gated MLP: the activation input, its output and the up projection (3*a*I); plain GELU MLP
  saves its input (a*I); GPT-2's Python "gelu_new" keeps ~4 intermediates.
* MoE: each token's top-k expert copies of the MLP tensors, plus the shared expert.
* torch.compile (inductor's min-cut partitioner) recomputes pointwise ops in backward: a
  norm keeps only its 16-bit input and the fused SwiGLU only gate and up.
* Full gradient checkpointing keeps only each layer's input (stream bytes x h) and
  recomputes one layer at a time in backward (Korthikanti's "full recomputation").
* Loss, `loss_bytes`:
  - "fused" (trl 1.16 `add_fused_lm_head` + `ChunkedLogProbFunction`, every tunewise
    trainer): never holds (b, s, V) logits.  It saves a copy of the final hidden states
    and per-token fp32 statistics; forward and backward project tiles of at most 4096
    tokens x 32768 vocabulary entries into one buffer in the compute dtype, and backward
    accumulates the hidden-state gradient (and a trained head's weight gradient) in fp32.
    Without Triton (CPU) each tile is also upcast and transformed in fp32 by torch ops.
  - "hf": transformers' loss on b*s*V logits: 16-bit logits (2) + fp32 log_softmax (4) +
    two fp32 buffers in its backward (8) = 14 bytes per token per vocab entry.
  - "chunked" (torchtune CEWithChunkedOutputLoss): 16-bit logit chunks kept for backward
    plus one fp32 chunk at a time (8 chunks): 2.5 bytes per token per vocab entry.
  - "fp32-logits": a model that returns fp32 logits and a loop that keeps them until the
    step ends -- torchtune before 2024-07-28 (`TransformerDecoder`: `output =
    self.output(h).float()`; recipes: `logits = logits[..., :-1, :].contiguous()`, no `del
    logits` until commit 8a98fbaa) and transformers < 4.46 (`logits = logits.float()` in
    `LlamaForCausalLM.forward`): fp32 logits (4) + fp32 log_softmax (4) + two fp32 buffers in
    its backward (8) = 16 bytes per token per vocab entry.
  - "fp32-logits-freed": the same model with the logits freed once the loss is computed
    (torchtune from 2024-07-28: `del logits  # free logits otherwise it peaks backward
    memory`, and no shifted copy): log_softmax (4) + its two backward buffers (8) = 12.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.models import ModelSpec

LOGITS_BYTES_HF = 14.0
LOGITS_BYTES_CHUNKED = 2.5
LOGITS_BYTES_FP32_OUTPUT = 16.0
LOGITS_BYTES_FP32_FREED = 12.0
# The losses that hold (b, s, V) logits: bytes per token per vocab entry (module docstring).
LOGITS_BYTES = {"hf": LOGITS_BYTES_HF, "chunked": LOGITS_BYTES_CHUNKED,
                "fp32-logits": LOGITS_BYTES_FP32_OUTPUT, "fp32-logits-freed": LOGITS_BYTES_FP32_FREED}
# trl/kernels/chunked_logprob.py: TOKEN_CHUNK_SIZE and trl/trainer/utils.py:
# _CHUNKED_LOGPROB_CHUNK_SIZE -- the fused head's projection tile.
FUSED_TILE_TOKENS = 4096
FUSED_TILE_VOCAB = 32768
# Without Triton, `_backward_tile` holds about eight fp32 copies of the tile at once (upcast,
# scaled logits, log p, p, gradient, target mask as float, difference, product) and a bool mask.
FUSED_TILE_FP32_COPIES_TORCH = 8.25

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
    loss: str = "fused"  # "fused" | "hf" | "chunked" | "fp32-logits(-freed)" (module docstring)
    lm_head_trains: bool = False
    compiled: bool = False  # torch.compile fuses pointwise ops and recomputes them in backward
    autocast: bool = False  # amp/fp16: the forward runs under torch.autocast
    adapter_bytes: int = 2  # dtype bytes of the LoRA weights
    fused_kernels: bool = True  # CUDA kernels (1-byte dropout mask, Triton loss tiles)
    head_weight_bytes: int = 2  # dtype bytes of the lm_head weight

    @property
    def stream_bytes(self) -> int:
        """Residual stream dtype: fp32 when fp32 masters run under autocast."""
        return 4 if self.autocast and self.full_train else self.act_bytes


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


def _stream_fed(group: str) -> bool:
    """Groups whose input is a norm's output (the stream dtype), not a 16-bit op's output."""
    return group in ("attn_in", "mlp_in")


def layer_bytes_per_token(spec: ModelSpec, inp: ActivationInputs) -> float:
    """Bytes one decoder layer keeps per token without checkpointing (see module doc)."""
    a, h, st = inp.act_bytes, spec.hidden, inp.stream_bytes
    q_width = spec.n_heads * spec.head_dim
    rms = spec.family not in ("gpt2", "gpt_neox", "falcon", "bloom")
    n_norms = 4 if spec.family in ("gemma2", "gemma3_text") else 2
    norm = (4 * h + (st * h if inp.full_train else 0)) if rms and not inp.compiled else st * h
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
    if inp.full_train:
        return _full_linear_inputs(spec, inp)
    a = inp.act_bytes
    ab = inp.adapter_bytes
    computes = a if inp.autocast else ab  # dtype lora_A computes (and saves its input) in
    mask = 1 if inp.fused_kernels else ab  # fused bool mask vs composite noise tensor
    saved = 0.0
    shared_groups: set[str] = set()
    for path in inp.adapted:
        if path.startswith("experts."):
            saved += spec.experts_per_token * a * spec.hidden * (3 if inp.lora_dropout else 1)
            continue
        group = input_group(path)
        width = _group_width(spec, group)
        if inp.lora_dropout:
            saved += (mask + computes) * width  # dropout mask/noise + lora_A's input
        elif ab == a:
            shared_groups.add(group)  # lora_A reads the very tensor the base layer reads
        else:
            saved += computes * width  # each module's own cast to (and from) the adapter dtype
    saved += sum(a * _group_width(spec, g) for g in shared_groups)
    return saved


def _full_linear_inputs(spec: ModelSpec, inp: ActivationInputs) -> float:
    a = inp.act_bytes
    per_module_cast = inp.stream_bytes != a  # autocast casts the fp32 stream once per module
    paths = [p for p, _, _ in spec.layer_linears]
    if spec.is_moe:
        paths = [p for p in paths if input_group(p) not in ("mlp_in", "mlp_mid")]
    saved = 0.0
    for group in {input_group(p) for p in paths}:
        copies = sum(1 for p in paths if input_group(p) == group) if per_module_cast and _stream_fed(group) else 1
        saved += copies * a * _group_width(spec, group)
    if spec.is_moe:
        saved += spec.experts_per_token * a * spec.moe_intermediate
    return saved


def activation_bytes(spec: ModelSpec, inp: ActivationInputs) -> dict[str, float]:
    """Peak activation bytes: stored layers, the loss spike, one recomputed layer."""
    per_layer = layer_bytes_per_token(spec, inp) * inp.tokens
    h, st = spec.hidden, inp.stream_bytes
    if inp.checkpointing:
        stored = spec.n_layers * st * h * inp.tokens
        recompute = per_layer  # one layer rematerialised at a time in backward
    else:
        stored = spec.n_layers * per_layer
        recompute = 0.0
    # final norm (fp32 upcast + trained normalised output) + the hidden states the head keeps
    head = (4 * h + (st * h if inp.full_train else 0) + st * h) * inp.tokens
    return {"stored": stored + head, "logits": loss_bytes(spec, inp), "recompute": recompute}


def loss_bytes(spec: ModelSpec, inp: ActivationInputs) -> float:
    """The loss spike on top of the stored activations (module docstring, "Loss")."""
    if inp.loss in LOGITS_BYTES:
        return LOGITS_BYTES[inp.loss] * spec.vocab * inp.tokens
    tile = min(inp.tokens, FUSED_TILE_TOKENS) * min(spec.vocab, FUSED_TILE_VOCAB)
    spike = tile * inp.act_bytes
    if not inp.fused_kernels:
        spike += tile * 4 * FUSED_TILE_FP32_COPIES_TORCH
    spike += 4 * spec.hidden * inp.tokens  # fp32 hidden-state gradient accumulator
    if inp.lm_head_trains and inp.head_weight_bytes != 4:
        spike += 4 * spec.vocab * spec.hidden  # fp32 weight-gradient accumulator before its cast
    return float(spike)
