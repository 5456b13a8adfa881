"""Per-method assembly of memory components (bytes per device); see advisor/memory.py.

prompt  inference only: 16-bit weights, the KV cache of batch x seq tokens, one layer's
        transient activations and the 16-bit + fp32 logits of a scoring pass.
lora    frozen 16-bit base + the adapter (its dtype: advisor/memory.py), its gradients and
        optimizer states.
qlora   the same on an NF4 base, bf16 adapters (trl).
full    every weight trains: weights, gradients and optimizer states of all of them.
dpo     chosen and rejected completions run in one batch (2 x batch sequences, trl
        DPOTrainer concatenates them).  With an adapter (default) the reference is the base
        with the adapter disabled (no second copy); without, a frozen second model in the
        policy's dtype (trl DPOTrainer loads it with dtype=model.dtype) unless
        reference log-probs are precomputed (trl docs, memory_formulas.md §6).
rlhf    the policy stage, which holds the most (runners/rlhf.py).  RLOO (what tunewise runs;
        trl 1.16 has no PPO): a trainable policy, a frozen reference and a frozen reward
        model.  PPO (knobs.rlhf_algorithm="ppo", for comparison) adds a trainable value
        model, trained backward together with the policy.  With adapters, policy and
        reference share one base (the adapter disabled, or trl's frozen "ref" adapter copy)
        and a PPO value adapter sits on the reward model's base; frozen copies are kept in
        the compute precision.  Sampling holds a KV cache for the generation batch (batch x
        grad_accum completions for RLOO, trl's steps_per_generation = grad_accum; batch for
        PPO) of seq_len + rlhf_response_tokens tokens.  Peak = the larger phase (training vs
        sampling).  The reward-model stage trains one model and holds less.
"""

from __future__ import annotations

from advisor import activations as act
from advisor.lora import AdapterPlan
from advisor.memory import (
    NF4_BYTES,
    MemoryKnobs,
    activation_inputs,
    adapter_weight_bytes,
    autocasts,
    compute_bytes,
    master_bytes,
    optimizer_bytes_per_param,
    quantization_constant_bytes,
    quantized_weight_bytes,
)
from advisor.models import ModelSpec
from advisor.scaleout import Sharding, layer_params
from tunewise.methods import Method
from tunewise.settings import TrainSettings


def components(
    spec: ModelSpec, method: Method, settings: TrainSettings, adapter: AdapterPlan | None,
    *, gpus: int, knobs: MemoryKnobs,
) -> dict[str, float]:
    """Bytes per device: weights, gradients, optimizer, activations, adapter, pageable."""
    if method is Method.PROMPT:
        return _finish(_inference(spec, settings, gpus))
    with_adapter = method in (Method.LORA, Method.QLORA) or (
        method in (Method.DPO, Method.RLHF) and knobs.preference_adapter
    )
    sequences = settings.batch_size * (2 if method is Method.DPO else 1)
    shard = Sharding.of(settings, gpus)
    inputs = activation_inputs(spec, settings, sequences=sequences, full_train=not with_adapter,
                               adapter=adapter if with_adapter else None, knobs=knobs, method=method)
    acts = act.activation_bytes(spec, inputs)
    if knobs.activation_offload:
        acts["stored"] = acts["stored"] / spec.n_layers  # checkpoints live in CPU RAM
    if with_adapter:
        parts = _adapter_parts(spec, method, settings, adapter, shard, knobs)
    else:
        parts = _full_parts(spec, settings, shard, knobs)
    value_model = method is Method.RLHF and knobs.rlhf_algorithm == "ppo"
    copies = 2 if value_model else 1  # PPO: policy + value train together
    if method is Method.DPO and not with_adapter and not knobs.precompute_reference:
        # trl loads the reference in the policy's dtype (DPOTrainer: dtype=self.model.dtype)
        parts["weights"] += spec.params * master_bytes(settings.precision) / shard.weights
    if method is Method.RLHF:
        parts = _rlhf_extra(spec, settings, parts, with_adapter, shard, value_model=value_model)
    parts.update(_peak(parts, acts, copies, settings.grad_accum > 1))
    if method is Method.RLHF:
        parts["activations"] = max(parts["activations"], _kv_cache(spec, settings, knobs))
    return _finish(parts)


def _full_parts(spec: ModelSpec, settings: TrainSettings, shard: Sharding, knobs: MemoryKnobs) -> dict:
    """Every weight trains.  Sharding and offload: advisor/scaleout.py.  DeepSpeed keeps the
    16-bit weights on the GPU and amp's fp32 masters inside the optimizer partition (ZeRO
    §3: K = 12 counts them); FSDP keeps sharded masters and gathers 16-bit layers (its
    MixedPrecision param_dtype), so neither holds autocast's weight copies."""
    prec = settings.precision
    n = spec.params
    mb, cb = master_bytes(prec), compute_bytes(prec)
    deepspeed_amp = shard.strategy == "deepspeed" and shard.stage >= 1 and mb != cb
    resident = cb if deepspeed_amp else mb
    weights = 0.0 if shard.offload_weights else n * resident / shard.weights
    weights += shard.gathered_params(spec) * cb
    if shard.keeps_unsharded_weights:
        weights += n * cb
    head = (spec.lm_head_params or spec.embedding_params) * mb / shard.gradients
    grads_all = n * mb / shard.gradients + shard.reduce_buffer_params(spec, n) * mb
    if knobs.optimizer_in_backward:
        grads_all = head  # each gradient is applied and freed during backward
    if shard.offload and shard.stage >= 2:
        grads_all = head = shard.reduce_buffer_params(spec, n) * mb  # partitions live in CPU RAM
    if shard.ddp_buckets:
        grads_all *= 2  # DDP's flat all-reduce buckets hold a second copy of the gradients
    state_bytes = optimizer_bytes_per_param(settings.optimizer, mb) + (4.0 if deepspeed_amp else 0.0)
    optimizer = 0.0 if shard.offload else n * state_bytes / shard.optimizer
    offloaded = _offloaded(shard, n, state_bytes, mb, resident)
    pageable = optimizer if settings.optimizer.startswith("paged") else 0.0
    # autocast caches a 16-bit copy of every matmul weight until the forward (and loss) ends;
    # with checkpointing, backward re-casts one layer at a time
    layer_casts = 2.0 * layer_params(spec) if autocasts(prec) and shard.stage == 0 else 0.0
    return {"weights": weights, "grads_all": grads_all, "grads_head": head, "optimizer": optimizer,
            "adapter": 0.0, "pageable": pageable, "forward_casts": layer_casts * spec.n_layers, "offloaded": offloaded,
            "layer_casts": layer_casts if settings.gradient_checkpointing else 0.0,
            "step_temp": _step_temp(settings, knobs, n * mb / shard.optimizer)}


def _offloaded(shard: Sharding, trainable: float, state_bytes: float, grad_bytes: float, weight_bytes: float,
               frozen_bytes: float = 0.0) -> float:
    """Bytes per GPU that CPU offload keeps in CPU RAM: its share of the optimizer states, the
    gradients (ZeRO-2/3) and, with offloaded weights, the weights."""
    if not shard.offload:
        return 0.0
    out = trainable * state_bytes / shard.optimizer
    out += trainable * grad_bytes / shard.gradients if shard.stage >= 2 else 0.0
    out += (trainable * weight_bytes + frozen_bytes) / shard.weights if shard.offload_weights else 0.0
    return out


def _step_temp(settings: TrainSettings, knobs: MemoryKnobs, trainable_bytes: float) -> float:
    """torch's foreach AdamW (no fused kernel: CPU/MPS) allocates sqrt(v) for every parameter
    (torch/optim/adamw.py `_multi_tensor_adamw`: `exp_avg_sq_sqrt = torch._foreach_sqrt(...)`);
    CUDA runs `adamw_torch_fused` (runners/translate.py), bitsandbytes updates in place."""
    return trainable_bytes if settings.optimizer == "adamw" and knobs.fused_optimizer is False else 0.0


def base_weight_bytes(spec: ModelSpec, method: Method, settings: TrainSettings, knobs: MemoryKnobs) -> tuple[float, float]:
    """A frozen base as the GPU stores it: (shardable bytes, replicated quantisation constants)."""
    if method is Method.QLORA:
        total = quantized_weight_bytes(spec, settings.precision, knobs.double_quant)
        constants = 0.0 if knobs.quant_constants_sharded else quantization_constant_bytes(spec, knobs.double_quant)
        return total - constants, constants
    return spec.params * compute_bytes(settings.precision), 0.0  # a frozen base has no masters


def _adapter_parts(
    spec: ModelSpec, method: Method, settings: TrainSettings, adapter: AdapterPlan | None,
    shard: Sharding, knobs: MemoryKnobs,
) -> dict:
    prec = settings.precision
    shardable, constants = base_weight_bytes(spec, method, settings, knobs)
    gathered_bytes = NF4_BYTES if method is Method.QLORA else compute_bytes(prec)  # a layer's weights
    base = 0.0 if shard.offload_weights else shardable / shard.weights
    base += constants + shard.gathered_params(spec) * gathered_bytes
    if shard.keeps_unsharded_weights:
        base += shardable  # FSDP SHARD_GRAD_OP: every layer stays gathered from forward to backward
    n_adapter = adapter.trainable_params if adapter else 0
    ab = adapter_weight_bytes(method, prec, knobs)
    adapter_w = n_adapter * ab / shard.weights
    grads = n_adapter * ab / shard.gradients
    if shard.ddp_buckets:
        grads *= 2
    state_bytes = optimizer_bytes_per_param(settings.optimizer, ab)
    optimizer = 0.0 if shard.offload else n_adapter * state_bytes / shard.optimizer
    offloaded = _offloaded(shard, n_adapter, state_bytes, ab, ab, shardable)
    pageable = optimizer if settings.optimizer.startswith("paged") else 0.0
    casts = 2.0 * n_adapter if autocasts(prec) and ab == 4 else 0.0
    # Adapter gradients exist in both peak moments (they are tiny next to the base).
    return {"weights": base, "grads_all": grads, "grads_head": grads, "optimizer": optimizer,
            "adapter": adapter_w, "pageable": pageable, "forward_casts": casts, "layer_casts": 0.0,
            "offloaded": offloaded,
            "step_temp": _step_temp(settings, knobs, n_adapter * ab)}


def _rlhf_extra(spec, settings, parts, with_adapter, shard, *, value_model: bool) -> dict:
    frozen = spec.params * compute_bytes(settings.precision) / shard.weights
    if with_adapter:
        # the reward model's base; the reference is the policy's base with its adapter off,
        # or (a continued SFT adapter, runners/rlhf.py's default) trl's frozen "ref" adapter copy
        parts["weights"] += frozen
        reference_adapter = parts["adapter"]
        if value_model:  # PPO: a value adapter (on the reward model's base) trains too
            for key in ("adapter", "optimizer", "grads_all", "grads_head", "pageable"):
                parts[key] *= 2
        parts["adapter"] += reference_adapter
        return parts
    if value_model:  # PPO: the value model trains like the policy
        for key in ("weights", "optimizer", "grads_all", "grads_head", "pageable"):
            parts[key] *= 2
    parts["weights"] += 2 * frozen  # reward model and reference: frozen copies
    return parts


def _peak(parts: dict, acts: dict, copies: int, accumulating: bool) -> dict:
    """Pick the largest of three moments: the end of the forward (activations, the loss spike,
    autocast's weight copies), the end of backward (all gradients, one recomputed layer), and
    the optimizer step (all gradients and the step's temporaries).  Transients are reported
    as activations (the step's as optimizer)."""
    start_grads = parts["grads_all"] if accumulating else parts["grads_head"]
    casts = parts.get("forward_casts", 0.0)
    start = copies * (acts["stored"] + max(acts["logits"], acts["recompute"]) + casts) + start_grads
    end = parts["grads_all"] + copies * (acts["recompute"] + parts.get("layer_casts", 0.0))
    step = parts["grads_all"] + parts.get("step_temp", 0.0)
    if start >= max(end, step):
        return {"gradients": start_grads, "activations": start - start_grads}
    if end >= step:
        return {"gradients": parts["grads_all"], "activations": end - parts["grads_all"]}
    return {"gradients": parts["grads_all"], "activations": 0.0,
            "optimizer": parts["optimizer"] + parts["step_temp"]}


def _kv_cache(spec: ModelSpec, settings: TrainSettings, knobs: MemoryKnobs) -> float:
    """K and V of every layer for the generation batch, prompt + response tokens each."""
    a = compute_bytes(settings.precision)
    batch = settings.batch_size * (1 if knobs.rlhf_algorithm == "ppo" else settings.grad_accum)
    response = knobs.rlhf_response_tokens or settings.rlhf_response_tokens
    tokens = batch * (settings.seq_len + response)
    return 2.0 * spec.n_layers * spec.n_kv_heads * spec.head_dim * a * tokens


def _inference(spec: ModelSpec, settings: TrainSettings, gpus: int = 1) -> dict:
    """Evaluation (tunewise eval, prompting): on several GPUs the layers are spread over them
    (accelerate's device_map="auto", evals/harness.py) and run one GPU after another, so each
    holds 1/gpus of the weights and of the KV cache, and the busiest (the last, with the
    head) one layer's transients and the logits."""
    a = compute_bytes(settings.precision)
    tokens = settings.batch_size * settings.seq_len
    kv = 2.0 * spec.n_layers * spec.n_kv_heads * spec.head_dim * a * tokens
    transient = (4 * spec.hidden + 3 * spec.intermediate) * a * tokens
    logits = (a + 4) * spec.vocab * tokens
    return {"weights": spec.params * float(a) / gpus, "gradients": 0.0, "optimizer": 0.0,
            "activations": kv / gpus + transient + logits, "adapter": 0.0, "pageable": 0.0}


def _finish(parts: dict) -> dict[str, float]:
    keys = ("weights", "gradients", "optimizer", "activations", "adapter", "pageable")
    out = {k: float(parts.get(k, 0.0)) for k in keys}
    out["allocated_no_paged"] = sum(out[k] for k in keys[:-1]) - out["pageable"]
    out["offloaded"] = float(parts.get("offloaded", 0.0))
    return out
