"""Peak memory per device for one training configuration, by component.

Precision (what `TrainSettings.precision` means everywhere: here and in runners/translate.py):
* bf16 -- pure bf16: every weight loaded in bf16, trainable ones updated in bf16 (bf16
  gradients, AdamW states in the parameter dtype), no autocast: 2 + 2 + 4 = 8 B/param
  before activations (LLaMA-Factory "pure_bf16", torchtune's default; memory_formulas.md §2).
* amp -- fp32 master weights with bf16 autocast (fp16 on GPUs without bf16): 4 + 4 + 8 =
  16 B/param (ZeRO paper's mixed-precision Adam, arXiv:1910.02054 §3), plus the 16-bit
  copies autocast makes of every weight during the forward (2 B/param while the loss is
  computed; torch.autocast caches casts of leaf parameters until the forward exits).
* fp16 -- like amp with fp16 autocast and a GradScaler: fp16 master weights cannot train
  (GradScaler refuses fp16 gradients; pure fp16 diverges), so the masters stay fp32.
* fp32 -- everything in fp32, no autocast.
A frozen base (LoRA, QLoRA, references, reward models) never has masters: it is loaded in
the compute dtype (bf16/fp16, fp32 for fp32).  LoRA adapters are trainable weights: bf16
under pure bf16, fp32 under amp/fp16/fp32 (PEFT `autocast_adapter_dtype=True`); QLoRA
adapters are always bf16 (trl 1.16 `SFTTrainer` casts them, QLoRA paper §3).

Other bytes per parameter (sources in reference memory_formulas.md §1-2, §5):
* NF4 0.5 + quantisation constants 4/64 (one fp32 absmax per 64 weights) or, with double
  quantisation, 1/64 + 4/(64*256) (QLoRA §3).  bitsandbytes only quantises nn.Linear/
  Conv1D: embeddings, lm_head (transformers `get_keys_to_not_convert`), norms and, in
  transformers 5, fused MoE expert tensors stay 16-bit.
* AdamW: two states in the parameter dtype; 8-bit AdamW 2 (bitsandbytes blockwise); plain
  SGD (HF `optim="sgd"`, no momentum) 0.  ZeRO (arXiv 1910.02054): stage 1 shards
  optimizer states, 2 also gradients, 3 also weights, over N.

The peak is the larger of two moments (training memory timeline): the end of the forward
(all activations + the loss spike + the head's gradient + autocast weight copies) and the
end of backward (all gradients + one recomputed layer).  Gradient accumulation keeps the
gradients at both.  A paged optimizer's states live in CUDA unified memory: they count in
the total but can be evicted to CPU RAM, so they are reported as `pageable`.

The overhead is the CUDA context plus the caching allocator's reserve over what tensors
use (fitted once, globally, against published measurements), or on CPU/Apple the
resident runtime, its growth once training starts and the host allocator's share (see the
constants).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from advisor import activations as act
from advisor.hardware import Hardware
from advisor.lora import AdapterPlan
from advisor.models import ModelSpec
from tunewise.methods import Method
from tunewise.settings import TrainSettings

GIB = 2**30
# CUDA context + cuBLAS workspace, invisible to torch.cuda.max_memory_* (CUDA 12 lazy loading:
# ~0.3-0.6 GiB on A100/H100; assumption 0.5) and NCCL buffers with more than one GPU.
CUDA_CONTEXT_GIB = 0.5
NCCL_GIB = 0.5
# Python + torch + transformers resident memory for CPU/Apple runs (assumption).
RUNTIME_GIB_HOST = 1.0
# What the host runtime itself grows by once training starts (autograd engine, OpenMP/oneDNN
# pools and caches, the graph's Python objects), on top of the tensors: measured as the RSS
# growth of training steps whose tensors are negligible -- the bundled 1.18M-parameter model
# at batch 1 x 128 tokens grew 0.026-0.050 GiB above its tensors (full, LoRA, QLoRA, DPO;
# median 0.04; benchmarks/estimate_cpu.py).  Applied to Apple hosts too (not measured there).
HOST_TRAINING_RUNTIME_GIB = 0.04
# Caching-allocator reserve above the allocated peak (reserved/allocated - 1).  Answer.AI
# measured 10.24/8.28 and 10.22/9.16 GiB (ratios 1.24 and 1.12; fsdp_qlora benchmarks);
# one global value fitted to the published reserved peaks: 0.05/0.10/0.15/0.20 give median
# absolute errors 10.4/11.6/9.6/11.7% and p90 36.4/33.4/30.4/27.3% (benchmarks/
# estimate_accuracy.py, table 1, all scored rows); the median picks 0.15.
ALLOCATOR_RESERVE = 0.15

NF4_BYTES = 0.5
NF4_ABSMAX_BYTES = 4 / 64
NF4_DOUBLE_QUANT_BYTES = 1 / 64 + 4 / (64 * 256)


@dataclass(frozen=True)
class MemoryKnobs:
    """Framework features that change memory.  Defaults describe tunewise's runners
    (transformers Trainer / TRL 1.16, PEFT, bitsandbytes); the accuracy benchmark sets them
    from what each published measurement states (e.g. torchtune's chunked loss)."""

    attention: str = "sdpa"  # "sdpa" | "flash" | "eager"
    # "fused": trl's fused LM head (add_fused_lm_head, what every tunewise trainer uses);
    # "chunked": torchtune's chunked cross-entropy; "hf": transformers' loss on full logits;
    # "fp32-logits": fp32 logits kept through backward (torchtune before 2024-07, transformers < 4.46).
    loss: str = "fused"
    optimizer_in_backward: bool = False  # torchtune: gradients freed as soon as applied
    preference_adapter: bool = True  # DPO/RLHF train LoRA; the reference is the disabled adapter
    precompute_reference: bool = False  # TRL precompute_ref_log_probs
    double_quant: bool = True
    # bitsandbytes keeps NF4 constants in `quant_state` (not sharded by FSDP/ZeRO-3); torchao's
    # NF4Tensor (torchtune) all-gathers them with the data (`fsdp_pre_all_gather` returns
    # quantized_scalers, quantization_factor, quantized_data), so they shard.
    quant_constants_sharded: bool = False
    adapter_bytes: int | None = None  # None: as the runners do (see adapter_weight_bytes)
    activation_offload: bool = False
    rlhf_response_tokens: int | None = None  # None: TrainSettings.rlhf_response_tokens
    rlhf_algorithm: str = "rloo"  # what runners/rlhf.py runs; "ppo" adds a value model
    rlhf_sft_stage: bool = True  # RLHF time includes step 1 (SFT); False when reusing an SFT run
    compiled: bool = False  # torch.compile (torchtune recipes); tunewise runners run eager
    # None: from the device: CUDA runs fused kernels (dropout keeps a 1-byte mask, trl's loss
    # folds logits tiles in Triton); CPU/MPS run PyTorch's composite ops (dropout keeps its
    # noise tensor in the input dtype, the loss tiles are upcast to fp32 in torch).
    fused_kernels: bool | None = None
    # None: as runners/translate.py chooses: `adamw_torch_fused` on CUDA, foreach AdamW elsewhere
    fused_optimizer: bool | None = None


@dataclass(frozen=True)
class MemoryBreakdown:
    """GiB per device.  `pageable` is part of `optimizer` that paging can evict."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    adapter: float
    overhead: float
    pageable: float = 0.0
    offloaded: float = 0.0  # CPU RAM that CPU offload fills per GPU (not part of the total)

    @property
    def allocated(self) -> float:
        """What torch.cuda.max_memory_allocated would show (no context, no allocator reserve)."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.adapter

    @property
    def total(self) -> float:
        return self.allocated + self.overhead

    def to_dict(self) -> dict[str, float]:
        """Rounded parts and their exact sum, so the parts always add up to `total`."""
        parts = {k: round(getattr(self, k), 2) for k in
                 ("weights", "gradients", "optimizer", "activations", "adapter", "overhead")}
        return {**parts, "total": round(sum(parts.values()), 2)}


def master_bytes(precision: str) -> float:
    """Bytes of one trainable weight and of its gradient: 2 in pure bf16, else 4 (fp32 masters)."""
    return 2.0 if precision == "bf16" else 4.0


def compute_bytes(precision: str) -> int:
    """Bytes of an activation element and of a frozen (never updated) weight."""
    return 4 if precision == "fp32" else 2


def autocasts(precision: str) -> bool:
    """amp/fp16 run the forward under torch.autocast; bf16 and fp32 need no casts."""
    return precision in ("amp", "fp16")


def adapter_weight_bytes(method: Method, precision: str, knobs: MemoryKnobs) -> int:
    """dtype bytes of LoRA adapter weights: QLoRA bf16 (trl casts them, QLoRA §3); LoRA the
    trainable dtype of the precision (PEFT upcasts to fp32 unless the run is pure bf16)."""
    if knobs.adapter_bytes is not None:
        return knobs.adapter_bytes
    if method is Method.QLORA:
        return 2
    return int(master_bytes(precision))


def optimizer_bytes_per_param(optimizer: str, state_bytes: float) -> float:
    if optimizer == "adamw":
        return 2 * state_bytes
    if optimizer in ("adamw-8bit", "paged-adamw-8bit"):
        return 2.0
    return 0.0  # sgd without momentum


def quantized_linear_params(spec: ModelSpec) -> int:
    """Parameters bitsandbytes quantises: the decoder layers' Linear weights."""
    linear = spec.n_layers * sum(i * o for _, i, o in spec.layer_linears)
    if spec.family == "qwen2_moe":  # shared expert linears exist in sparse layers only
        linear = spec.n_layers * sum(i * o for p, i, o in spec.layer_linears if "shared" not in p)
        linear += spec.sparse_layers * sum(i * o for p, i, o in spec.layer_linears if "shared" in p)
    return linear


def quantization_constant_bytes(spec: ModelSpec, double_quant: bool) -> float:
    """The NF4 absmax (and double-quantisation) constants: bitsandbytes keeps them in the
    weight's `quant_state`, not in a parameter, so FSDP/ZeRO-3 do not shard them."""
    per = NF4_DOUBLE_QUANT_BYTES if double_quant else NF4_ABSMAX_BYTES
    return quantized_linear_params(spec) * per


def quantized_weight_bytes(spec: ModelSpec, precision: str, double_quant: bool) -> float:
    """NF4 base: Linear layers in 4 bits + constants, everything else in 16 bits."""
    linear = quantized_linear_params(spec)
    other = spec.params - linear
    return linear * NF4_BYTES + quantization_constant_bytes(spec, double_quant) + other * compute_bytes(precision)


def estimate_memory(
    spec: ModelSpec,
    method: Method,
    settings: TrainSettings,
    hardware: Hardware,
    adapter: AdapterPlan | None,
    *,
    gpus: int = 1,
    knobs: MemoryKnobs = MemoryKnobs(),
) -> MemoryBreakdown:
    """Peak memory per device (see the module docstring for every term)."""
    from advisor import memory_methods

    on_gpu = hardware.kind == "gpu"  # CUDA/ROCm kernels on GPUs; PyTorch composite ops on CPU/MPS
    knobs = dataclasses.replace(
        knobs, fused_kernels=on_gpu if knobs.fused_kernels is None else knobs.fused_kernels,
        fused_optimizer=on_gpu if knobs.fused_optimizer is None else knobs.fused_optimizer)
    parts = memory_methods.components(spec, method, settings, adapter, gpus=gpus, knobs=knobs)
    overhead_bytes = ALLOCATOR_RESERVE * parts["allocated_no_paged"]
    if hardware.kind == "gpu":
        context = CUDA_CONTEXT_GIB + (NCCL_GIB if gpus > 1 else 0.0)
    else:
        context = RUNTIME_GIB_HOST + (HOST_TRAINING_RUNTIME_GIB if method is not Method.PROMPT else 0.0)
    return MemoryBreakdown(
        weights=parts["weights"] / GIB,
        gradients=parts["gradients"] / GIB,
        optimizer=parts["optimizer"] / GIB,
        activations=parts["activations"] / GIB,
        adapter=parts["adapter"] / GIB,
        overhead=overhead_bytes / GIB + context,
        pageable=parts["pageable"] / GIB,
        offloaded=parts.get("offloaded", 0.0) / GIB,
    )


def activation_inputs(
    spec: ModelSpec, settings: TrainSettings, *, sequences: int, full_train: bool,
    adapter: AdapterPlan | None, knobs: MemoryKnobs, method: Method = Method.LORA,
) -> act.ActivationInputs:
    """What activations.py needs, from the settings and the knobs (`fused_kernels` resolved)."""
    precision = settings.precision
    return act.ActivationInputs(
        tokens=sequences * settings.seq_len,
        seq_len=settings.seq_len,
        act_bytes=compute_bytes(precision),
        full_train=full_train,
        adapted=tuple(m for m in (adapter.modules if adapter else ()) if m != "lm_head"),
        # trl's DPO and reward trainers set every dropout to p=0 (DPOConfig.disable_dropout)
        lora_dropout=settings.lora_dropout > 0 and method is not Method.DPO,
        checkpointing=settings.gradient_checkpointing,
        attention=knobs.attention,
        loss=knobs.loss,
        lm_head_trains=full_train or bool(adapter and "lm_head" in adapter.modules),
        compiled=knobs.compiled,
        autocast=autocasts(precision),
        adapter_bytes=adapter_weight_bytes(method, precision, knobs),
        fused_kernels=knobs.fused_kernels is not False,
        head_weight_bytes=int(master_bytes(precision)) if full_train else compute_bytes(precision),
    )
