"""Build the model a training run would use, as fake tensors: no weight is ever allocated.

The recipe (each step is what the real run does, minus the bytes):

1. the transformers architecture is built on the meta device from its config
   (`AutoModelForCausalLM.from_config`), in the dtype the run loads it in;
2. QLoRA: every `nn.Linear` except the output head becomes a bitsandbytes `Linear4bit`
   (`replace_with_bnb_linear` + `get_keys_to_not_convert`, as `from_pretrained` with a
   `BitsAndBytesConfig` does);
3. LoRA/QLoRA: peft's `get_peft_model` wraps the targeted linears (still on meta: peft's
   `.to()` fails on fake tensors, meta does not); QLoRA adapters are cast to bf16 as trl does,
   and so are LoRA adapters of pure bf16 runs (runners.translate.adapters_in_compute_dtype);
4. every meta parameter and buffer is replaced by a FakeTensor of the same shape, dtype and
   `requires_grad` (ties preserved).  A 4-bit weight is quantised with bitsandbytes' own
   `quantize_4bit` under fake mode, so its packed uint8 data (numel/2 bytes) and its
   quantisation state (absmax, double-quantised when configured) have bitsandbytes' exact
   shapes.  Approximation: the weight is a plain uint8 FakeTensor carrying a `quant_state`
   attribute instead of a `Params4bit` (a Parameter subclass cannot wrap a FakeTensor);
   `Linear4bit.forward` only reads `.quant_state`, so the ops and their saved tensors are
   bitsandbytes' own (`MatMul4Bit` keeps the input and the packed weight for backward).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings


@dataclass(frozen=True)
class Recipe:
    """How the run loads and trains the model (from runners.translate, as a CUDA run)."""

    dtype: Any  # torch dtype of the loaded weights
    autocast: Any  # torch dtype of the Trainer's autocast, or None (fp32)
    quantization: Any  # transformers BitsAndBytesConfig or None
    lora: Any  # peft LoraConfig or None
    bf16_adapters: bool = False  # trl (QLoRA) / pure bf16 runs cast the trainable adapters to bf16


def recipe(settings: TrainSettings, base: Method) -> Recipe:
    """The runners' own translation of `settings`, for a CUDA GPU with bf16.

    "bf16" loads everything in bf16 and trains without autocast (LoRA adapters cast to bf16);
    "amp"/"fp16" load trained weights in fp32 and autocast (fp32 grads and Adam states: 16
    bytes/param); an adapter's frozen base is loaded in the compute precision; QLoRA's base
    is NF4 with double quantisation (runners.translate.quantization_config).
    """
    import torch

    from runners._common import Runtime
    from runners.translate import _load_kwargs, _lora, quantization_config

    runtime = Runtime(device="cuda", precision=settings.precision, reason="traced as a CUDA run")
    adapter = base in (Method.LORA, Method.QLORA)
    quantized = base is Method.QLORA
    kwargs = _load_kwargs(runtime, adapter=adapter, quantized=quantized)
    return Recipe(dtype=kwargs["dtype"],
                  autocast={"amp": torch.bfloat16, "fp16": torch.float16}.get(settings.precision),
                  quantization=quantization_config(runtime) if quantized else None,
                  lora=_lora(settings) if adapter else None,
                  bf16_adapters=adapter and (quantized or settings.precision == "bf16"))


def load_config(model):
    """A transformers config from a config object, a config.json / model folder, or a catalog id.

    Catalog ids resolve offline through advisor.models: the catalog stores each model's
    upstream config.json fields, which become the matching transformers config class.
    """
    from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig

    from advisor.models import load_catalog, resolve_model

    if isinstance(model, PretrainedConfig):
        return model
    path = Path(str(model)).expanduser()
    if path.is_file():
        path = path.parent
    if (path / "config.json").is_file():
        try:
            return AutoConfig.from_pretrained(str(path))
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read a transformers config: {exc}",
                             path=str(path / "config.json"), field="model") from None
    spec = resolve_model(str(model))  # raises UnknownModelError with suggestions
    fields = dict(next(e["config"] for e in load_catalog() if e["id"] == spec.name))
    model_type = fields.pop("model_type")
    if model_type not in CONFIG_MAPPING:
        raise InputError(f"cannot trace {spec.name}: transformers has no {model_type!r} architecture",
                         field="model")
    config = CONFIG_MAPPING[model_type](**fields)
    config.name_or_path = spec.name
    return config


def build_meta_model(config, recipe: Recipe, *, reference: bool = False):
    """The architecture on the meta device, loaded/quantised/peft-wrapped as `recipe` says.

    `reference=True` builds trl's frozen reference copy (same dtype, no quantisation, no peft).
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=recipe.dtype, attn_implementation="sdpa")
    if reference:
        return model
    if recipe.quantization is not None:
        from transformers.integrations.bitsandbytes import replace_with_bnb_linear
        from transformers.quantizers.base import get_keys_to_not_convert

        model = replace_with_bnb_linear(model, modules_to_not_convert=get_keys_to_not_convert(model),
                                        quantization_config=recipe.quantization)
        model.is_loaded_in_4bit = True  # peft dispatches its Linear4bit layer on this flag
    if recipe.lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, recipe.lora)
        if recipe.bf16_adapters:  # trl: QLoRA adapters in bf16 (QLoRA paper §3); pure bf16 runs
            from runners.translate import trainable_to_bf16

            trainable_to_bf16(model)
    return model


def prepare_bitsandbytes() -> None:
    """Build bitsandbytes' quantisation maps for real, once, before entering fake mode.

    bitsandbytes computes them with data-dependent Python, which fake tensors cannot run;
    `quantize_4bit`/`quantize_blockwise` then reuse the cached real maps.
    """
    import bitsandbytes.functional as bnb_functional

    bnb_functional.name2qmap.setdefault("dynamic", bnb_functional.create_dynamic_map())


def materialize_fake(model, *, real: bool = False, device: str = "cpu") -> None:
    """Replace every meta parameter/buffer of `model` by a CPU FakeTensor (call under FakeTensorMode).

    With `real=True` (outside fake mode) the tensors are real, random N(0, 0.02) weights on
    `device`: the same code path, used to check the fake trace against a real step and by
    benchmarks/gpu_calibration.py to train random-init models on a GPU.
    """
    import torch

    done: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in done:  # tied weights stay tied
                done[id(param)] = _fake_parameter(module, param, real, device)
            module._parameters[name] = done[id(param)]
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                module._buffers[name] = torch.empty(buf.shape, dtype=buf.dtype, device=device)


def _fake_parameter(module, param, real: bool, device: str):
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnb_functional
    import torch

    if isinstance(param, bnb.nn.Params4bit):
        dense = _empty(param.shape, torch.bfloat16, real, device)
        packed, state = bnb_functional.quantize_4bit(
            dense, blocksize=param.blocksize, compress_statistics=param.compress_statistics,
            quant_type=param.quant_type, quant_storage=param.quant_storage)
        weight = torch.nn.Parameter(packed, requires_grad=False)
        weight.quant_state = state
        module.support_avx512bf16_for_cpu = False  # that path repacks weights for CPU inference
        return weight
    return torch.nn.Parameter(_empty(param.shape, param.dtype, real, device), requires_grad=param.requires_grad)


def _empty(shape, dtype, real: bool, device: str):
    import torch

    tensor = torch.empty(shape, dtype=dtype, device=device)
    return tensor.normal_(0.0, 0.02) if real and tensor.is_floating_point() else tensor


def quant_state_tensors(param) -> list:
    """The tensors of a 4-bit weight's quantisation state (absmax, nested absmax, code maps)."""
    state = getattr(param, "quant_state", None)
    if state is None:
        return []
    found = [state.absmax, state.code, state.offset]
    if state.state2 is not None:
        found += [state.state2.absmax, state.state2.code]
    import torch

    return [t for t in found if isinstance(t, torch.Tensor)]
