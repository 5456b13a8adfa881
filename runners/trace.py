"""Trace one training step of a real architecture under fake tensors: peak memory, per category.

`trace(model, method, settings)` builds the transformers model the run would train
(runners.trace_model: meta device -> bitsandbytes 4-bit -> peft -> FakeTensors), then runs
one steady-state step exactly as trl's trainers do -- forward through trl's fused LM head
(`add_fused_lm_head`: per-token log-probs in vocabulary chunks, never the full logits),
the DPO reference forward when the method needs one, backward, gradient clipping and the
optimizer step -- while `LiveTensorTracker` counts live storage bytes.  Nothing is
allocated, so Llama-2-70B traces in about a minute on a laptop CPU.

What the trace reproduces (sources: runners.translate, trl 1.16 `SFTTrainer`/`DPOTrainer`,
the transformers Trainer), traced as a CUDA run with bf16 support:
- loading as runners.translate does it for `settings.precision`: "bf16" = pure bf16 (every
  weight, gradient and Adam state in bf16, no autocast); "amp" = fp32 master weights with
  bf16 autocast (fp32 grads, fp32 Adam states); an adapter's frozen base in the compute
  dtype, QLoRA's base NF4 + double quantisation (16-bit embeddings/`lm_head`);
- LoRA adapters in fp32 under amp (peft `autocast_adapter_dtype=True`), bf16 under pure
  bf16 (runners.translate.adapters_in_compute_dtype); QLoRA adapters in bf16 (trl);
- the optimizer: "adamw" = `torch.optim.AdamW(fused=True)` (`adamw_torch_fused` on CUDA),
  "adamw-8bit"/"paged-adamw-8bit" = bitsandbytes `AdamW8bit` (paging only moves states
  under memory pressure; bytes are the same), "sgd" = SGD without momentum;
- steady state: the optimizer states already exist (one priming step runs first, excluded
  from the peak); with `grad_accum > 1` the gradients from earlier micro-batches are alive
  during the traced forward/backward; gradient clipping at 1.0;
- gradient checkpointing: `gradient_checkpointing_enable(use_reentrant=False)` (trl's
  default) and, with peft, `enable_input_require_grads()`;
- DPO (runners/dpo.py): a LoRA adapter unless `settings.dpo_lora` is False; chosen and
  rejected in one batch of 2*batch_size rows; the reference forward runs after the policy
  forward, under `no_grad` with checkpointing disabled, with the adapter disabled (LoRA)
  or through a frozen second fp32 copy of the model (all weights); dropout disabled.

`trace_extrapolated` traces 4 and 5 decoder layers and extrapolates exactly to the full
depth (see its docstring); `tunewise estimate --trace` and benchmarks/estimate_trace.py
use it, tests/integration/test_trace.py checks it against a full-depth trace.

Approximations (also returned in `TraceResult.approximations`):
- the fake device is the CPU: SDPA dispatches to PyTorch's CPU flash-attention kernel,
  which, like CUDA FlashAttention, saves out + logsumexp (no s^2 matrix) and handles GQA
  without repeating k/v; CUDA FlashAttention's backward workspace (dq accumulator) and the
  caching allocator's rounding/fragmentation are not modelled, so compare the trace with
  `max_memory_allocated`, not `max_memory_reserved`;
- batches are full-length, unpadded sequences (no attention mask tensor);
- CUDA context, cuBLAS workspaces and the allocator cache are outside the trace (the
  estimator's "overhead" component).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field

from runners.fake_memory import CATEGORIES, LiveTensorTracker
from runners.trace_model import (
    build_meta_model,
    load_config,
    materialize_fake,
    prepare_bitsandbytes,
    quant_state_tensors,
    recipe,
)
from runners.trace_step import (
    build_optimizer,
    prepare_for_training,
    prime_optimizer,
    run_step,
    track_positions,
    unpadded_causal_mask,
)
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

GIB = 1024**3
TRACEABLE = (Method.FULL, Method.LORA, Method.QLORA, Method.DPO)


@dataclass
class TraceResult:
    """Peak live tensor bytes of one traced training step (bytes, per device)."""

    model: str
    method: str
    dpo_adapter: bool | None  # DPO: LoRA adapter (reference = adapter disabled) or all weights
    settings: dict
    params: int  # parameters of the base architecture (sum of numel, before quantisation)
    trainable_params: int
    peak_bytes: int  # the largest total of live tensor bytes during the step
    at_peak: dict[str, int]  # that total split by category at the peak moment
    category_peaks: dict[str, int]  # each category's own maximum during the step
    peak_phase: str  # forward | reference forward | backward | optimizer
    seconds: float
    approximations: list[str] = field(default_factory=list)
    layers: int = 0  # decoder layers the numbers describe
    model_layers: int = 0  # decoder layers of the full architecture
    extrapolated_from: tuple[int, ...] | None = None  # depths traced when extrapolated
    label_peaks: dict[str, dict] = field(default_factory=dict, repr=False)  # per phase/position

    def gib(self, which: str = "at_peak") -> dict[str, float]:
        """`at_peak` or `category_peaks` in GiB, plus "total" (the overall peak)."""
        parts = {k: round(v / GIB, 3) for k, v in getattr(self, which).items()}
        return {**parts, "total": round(self.peak_bytes / GIB, 3)}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["peak_gib"] = round(self.peak_bytes / GIB, 3)
        data["at_peak_gib"] = self.gib("at_peak")
        data["category_peaks_gib"] = self.gib("category_peaks")
        return data


def trace(model, method: Method | str, settings: TrainSettings | None = None, *,
          fake: bool = True, layers: int | None = None) -> TraceResult:
    """Trace one steady-state training step of `model` (catalog id, config.json/folder or config).

    DPO trains a LoRA adapter (reference = adapter disabled) unless `settings.dpo_lora` is
    False (all weights, frozen reference copy), as runners/dpo.py does.  `fake=False` runs the identical step on real CPU
    tensors (small models only): the check that the fake trace counts what really lives.
    `layers` truncates the architecture to that many decoder layers (see `trace_extrapolated`).
    Raises InputError for methods without a training step.
    """
    import warnings
    from contextlib import nullcontext

    from torch._subclasses.fake_tensor import FakeTensorMode

    settings = settings or TrainSettings()
    method, base = _check_method(method, settings)
    config = load_config(model)
    depth = config.num_hidden_layers
    if layers is not None:
        config = with_layers(config, layers)
    started = time.perf_counter()
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else nullcontext()
    if fake:  # hashing every op for the fake-tensor cache costs more than it saves here
        fake_mode.cache_enabled = False
    tracker = LiveTensorTracker()
    plan = recipe(settings, base)
    policy, reference = _build_meta(config, method, plan)
    prepare_bitsandbytes()
    with fake_mode, tracker, warnings.catch_warnings(), unpadded_causal_mask():
        warnings.simplefilter("ignore", FutureWarning)  # trl calls deprecated transformers names
        _materialize(policy, reference, tracker, adapters=base in (Method.LORA, Method.QLORA),
                     real=not fake)
        prepare_for_training(policy, reference, method, settings)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        optimizer = build_optimizer(trainable, settings)
        prime_optimizer(optimizer, trainable, tracker, keep_grads=settings.grad_accum > 1)
        track_positions([m for m in (policy, reference) if m is not None], trainable, tracker)
        tracker.reset_peak()
        run_step(policy, reference, optimizer, method, settings, tracker, autocast=plan.autocast)
    return TraceResult(
        model=_model_name(model, config), method=method.value,
        dpo_adapter=(base is Method.LORA) if method is Method.DPO else None,
        settings=_settings_summary(settings),
        params=_base_params(config), trainable_params=sum(p.numel() for p in trainable),
        peak_bytes=tracker.peak, at_peak=tracker.at_peak,
        category_peaks=tracker.category_peaks, peak_phase=tracker.peak_label,
        seconds=round(time.perf_counter() - started, 2), approximations=_approximations(base),
        layers=config.num_hidden_layers, model_layers=depth,
        label_peaks={label: {"peak": peak, "at_peak": split, "category_peaks": cats}
                     for label, (peak, split, cats) in tracker.label_peaks.items()})


def trace_extrapolated(model, method: Method | str, settings: TrainSettings | None = None, *,
                       depths: tuple[int, int] = (4, 5)) -> TraceResult:
    """Trace two truncated depths and extrapolate linearly, per phase and layer position.

    Why it is exact for identical decoder layers: take one moment of the step, e.g. the
    k-th op of the backward of the last decoder layer.  Every other layer is then in the
    same state (its activations or checkpoint saved, its gradient not yet produced), so the
    live bytes at that moment are a + b*L for depth L.  The same holds for every moment
    labelled by phase and position (before the layers, first, second, penultimate, last
    layer, after the layers, optimizer step), hence for each label's peak: the traced
    labels are extrapolated one by one and the overall peak is the largest of them.  Layers
    strictly inside are never the peak: at a fixed op their bytes are linear in the layer
    index, so bounded by the second and penultimate layers (checked at the deeper trace).
    The depths must be >= 4 so first, second, penultimate and last are distinct layers.
    Falls back to the full-depth trace when the model is not deeper than the traced depths
    or the checks fail.
    """
    method, _ = _check_method(method, settings or TrainSettings())
    config = load_config(model)
    full = config.num_hidden_layers
    small_depth, large_depth = depths
    if min(depths) < 4 or small_depth >= large_depth:
        raise InputError(f"need two increasing depths >= 4, got {depths}", field="depths")
    if full <= large_depth or not uniform_layers(config):
        return trace(config, method, settings)
    small, large = (trace(config, method, settings, layers=d) for d in depths)
    labels = [k for k in large.label_peaks if k in small.label_peaks and not k.endswith("/inner")]
    if not _inner_bounded(large) or set(labels) != set(small.label_peaks):
        return trace(config, method, settings)
    scale = (full - small_depth) / (large_depth - small_depth)

    def line(a, b):
        if isinstance(b, dict):
            return {k: line(a[k], v) for k, v in b.items()}
        return round(a + (b - a) * scale)

    peaks = {k: line(small.label_peaks[k], large.label_peaks[k]) for k in labels}
    top = max(labels, key=lambda k: peaks[k]["peak"])
    category_peaks = {c: max(peaks[k]["category_peaks"][c] for k in labels) for c in CATEGORIES}
    return dataclasses.replace(
        large, peak_bytes=peaks[top]["peak"], at_peak=peaks[top]["at_peak"],
        category_peaks=category_peaks, peak_phase=top, label_peaks=peaks,
        trainable_params=line(small.trainable_params, large.trainable_params),
        params=_base_params(config), seconds=round(small.seconds + large.seconds, 2),
        layers=full, extrapolated_from=tuple(depths))


def uniform_layers(config) -> bool:
    """Whether every decoder layer is built alike (extrapolation's premise).

    Not alike: per-layer attention types (sliding/full alternation), MoE blocks on some
    layers only (qwen2_moe `mlp_only_layers`/`decoder_sparse_step`, DeepSeek's first dense
    layers).
    """
    kinds = set(getattr(config, "layer_types", None) or ())
    if len(kinds) > 1 or getattr(config, "mlp_only_layers", None):
        return False
    return getattr(config, "decoder_sparse_step", 1) in (None, 1) and not getattr(
        config, "first_k_dense_replace", 0)


def _inner_bounded(result: TraceResult) -> bool:
    """Inner layers' peak <= max(second, penultimate) in every phase (see trace_extrapolated)."""
    for label, entry in result.label_peaks.items():
        if label.endswith("/inner"):
            phase = label.rsplit("/", 1)[0]
            bound = max(result.label_peaks.get(f"{phase}/{p}", {"peak": 0})["peak"]
                        for p in ("second", "penultimate"))
            if entry["peak"] > bound:
                return False
    return True


def with_layers(config, layers: int):
    """A copy of `config` with `layers` decoder layers (per-layer lists cut to match)."""
    import copy

    if layers < 1:
        raise InputError(f"must be >= 1, got {layers}", field="layers")
    config = copy.deepcopy(config)
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types)[:layers]
    return config


def _check_method(method, settings: TrainSettings) -> tuple[Method, Method]:
    """(method, what its weights are trained like): DPO is LoRA unless dpo_lora is False."""
    from tunewise.methods import parse_method

    method = parse_method(method) if isinstance(method, str) else method
    if method not in TRACEABLE:
        raise InputError(f"cannot trace method {method.value!r}; traceable: "
                         f"{', '.join(m.value for m in TRACEABLE)}", field="method")
    if method is Method.DPO:
        return method, Method.FULL if settings.dpo_lora is False else Method.LORA
    return method, method


def _build_meta(config, method, plan):
    """Policy (and, for full DPO, trl's frozen reference copy) on the meta device."""
    policy = build_meta_model(config, plan)
    reference = None
    if method is Method.DPO and plan.lora is None:
        reference = build_meta_model(config, plan, reference=True)
    return policy, reference


def _materialize(policy, reference, tracker, *, adapters: bool, real: bool, device: str = "cpu") -> None:
    """Fake (or real, on `device`) tensors for every weight, registered as weights / adapter / reference."""
    with tracker.category("weights", "setup"):
        materialize_fake(policy, real=real, device=device)
    for param in policy.parameters():
        tracker.register(param, "adapter" if adapters and param.requires_grad else "weights")
        for tensor in quant_state_tensors(param):
            tracker.register(tensor, "weights")
    if reference is not None:
        with tracker.category("reference", "setup"):
            materialize_fake(reference, real=real, device=device)
        for param in reference.parameters():
            param.requires_grad_(False)
            tracker.register(param, "reference")


def _model_name(model, config) -> str:
    from transformers import PretrainedConfig

    if isinstance(model, PretrainedConfig):
        return getattr(config, "name_or_path", "") or config.model_type
    return str(model)


def _base_params(config) -> int:
    """Parameters of the plain architecture (== advisor ModelSpec.params)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _settings_summary(settings: TrainSettings) -> dict:
    keys = ("batch_size", "seq_len", "grad_accum", "gradient_checkpointing", "lora_rank",
            "lora_targets", "optimizer", "precision")
    return {k: getattr(settings, k) for k in keys}


def _approximations(base: Method) -> list[str]:
    notes = ["fake CPU device: SDPA = flash-attention-style kernel (out + logsumexp saved); "
             "allocator rounding, fragmentation and CUDA workspaces not modelled "
             "(compare with max_memory_allocated)",
             "full-length unpadded batches (no attention-mask tensor)",
             "CUDA context / allocator cache outside the trace"]
    if base is Method.QLORA:
        notes.append("NF4 weights are uint8 FakeTensors carrying bitsandbytes' quant_state "
                     "(same shapes as Params4bit)")
    return notes


__all__ = ["CATEGORIES", "TraceResult", "trace", "trace_extrapolated"]
