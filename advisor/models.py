"""Model specs: the architecture numbers the estimator needs, from the catalog or a config.json.

A `ModelSpec` is built from a Hugging Face `config.json` mapping (a local file or folder, or
an entry of the bundled catalog `advisor/model_catalog.json`, which stores exactly those
mappings).  Parameter counts are computed module by module the way transformers 5 builds
the model, so `spec.params == sum(p.numel() for p in model.parameters())` for the same
config (checked for every catalog entry by tests/integration/test_param_counts.py).

Families: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3 (fused qkv and
gate_up), gpt2 (Conv1D), gpt_neox, falcon, bloom, and the MoE families mixtral,
qwen2_moe, qwen3_moe (total vs per-token active parameters).

Pure standard library: the advisor never imports torch.
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, UnknownModelError

CATALOG_PATH = Path(__file__).with_name("model_catalog.json")

# transformers 5 stores MoE experts as fused 3-D parameters; PEFT 0.21 re-targets LoRA on
# them (and on the router) only for model types that transformers converts from the v4
# layout (peft `utils/transformers_weight_conversion.py`, `_MOE_TARGET_MODULE_MAPPING`,
# reached through transformers' `_MODEL_TO_CONVERSION_PATTERN`).  Verified by the
# integration test against `get_peft_model`.
PEFT_MOE_CONVERSION = {
    "mixtral": {"gate": "router", "w1": "gate_up", "w3": "gate_up", "w2": "down"},
    "qwen3_moe": {"gate": "router", "gate_proj": "gate_up", "up_proj": "gate_up", "down_proj": "down"},
}

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")
MOE = ("mixtral", "qwen2_moe", "qwen3_moe")
SUPPORTED_FAMILIES = (*LLAMA_LIKE, *MOE, "gpt2", "gpt_neox", "falcon", "bloom")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers of one causal LM (per-layer shapes are for a dense layer)."""

    name: str
    family: str  # the config's model_type
    source: str  # "catalog" | "config"
    params: int  # == sum(p.numel()) of the transformers model
    active_params: int  # params touched per token (== params for dense models)
    n_layers: int
    hidden: int
    intermediate: int  # MLP width of a dense layer (per expert for MoE: see moe_intermediate)
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    max_position: int
    n_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0  # width of one routed expert
    shared_expert_intermediate: int = 0  # qwen2_moe's always-on shared expert
    sparse_layers: int = 0  # how many layers hold a MoE block (the others are dense)
    layer_linears: tuple[tuple[str, int, int], ...] = ()  # (module path in a layer, in, out)
    embedding_params: int = 0  # input embeddings (+ learned positions)
    lm_head_params: int = 0  # 0 when tied to the input embeddings
    gated_mlp: bool = True  # SwiGLU/GeGLU style (gate * up) vs plain 2-matrix MLP
    config_url: str = ""  # where the architecture numbers come from

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def billions(self) -> float:
        return self.params / 1e9

    def summary(self) -> dict[str, Any]:
        """The `model` block of the estimate/v1 contract."""
        return {"name": self.name, "params": self.params, "source": self.source}


def linear_shapes(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    """Per-layer nn.Linear/Conv1D module path -> (in_features, out_features).

    MoE experts are fused parameters in transformers 5 and are not listed here.
    """
    return {name: (fan_in, fan_out) for name, fan_in, fan_out in spec.layer_linears}


# --------------------------------------------------------------------------- resolution


def resolve_model(name_or_path: str) -> ModelSpec:
    """A catalog id (or alias), a config.json file, or a model folder -> ModelSpec."""
    text = str(name_or_path).strip()
    if not text:
        raise InputError("model must not be empty", field="model")
    path = Path(text).expanduser()
    if path.exists():
        config_file = path / "config.json" if path.is_dir() else path
        if not config_file.is_file():
            raise InputError("folder has no config.json", path=path, field="model")
        return spec_from_config(_read_config(config_file), name=text, source="config", path=config_file)
    entry = _catalog_lookup(text)
    return spec_from_config(entry["config"], name=entry["id"], source="catalog", url=entry["source"])


def catalog_ids() -> list[str]:
    return [entry["id"] for entry in load_catalog()]


@functools.cache
def load_catalog() -> tuple[dict[str, Any], ...]:
    with CATALOG_PATH.open(encoding="utf-8") as fh:
        return tuple(json.load(fh)["models"])


def _catalog_lookup(name: str) -> dict[str, Any]:
    wanted = name.lower()
    by_key: dict[str, dict[str, Any]] = {}
    for entry in load_catalog():
        for key in (entry["id"], *entry.get("aliases", ())):
            by_key[key.lower()] = entry
            by_key.setdefault(key.split("/")[-1].lower(), entry)  # "Llama-3.1-8B" without org
    if wanted in by_key:
        return by_key[wanted]
    close = difflib.get_close_matches(wanted, list(by_key), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}: not in the built-in catalog and not a local config.json or "
        f"model folder{hint} (list: tunewise estimate --list-models)",
        field="model",
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path=path)
    if data.get("model_type") not in SUPPORTED_FAMILIES and isinstance(data.get("text_config"), dict):
        # Multimodal wrappers (e.g. gemma3): estimate the language model only.
        text = dict(data["text_config"])
        text.setdefault("model_type", f"{data.get('model_type')}_text")
        return text
    return data


# --------------------------------------------------------------------------- from config


class _Config:
    """Typed access to a config mapping; every problem names the file and field."""

    def __init__(self, data: dict[str, Any], path: Path | None) -> None:
        self.data = data
        self.path = path

    def int(self, *keys: str, default: int | None = None) -> int:
        for key in keys:
            value = self.data.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"expected an integer, got {value!r}", path=self.path, field=key)
            if value <= 0:
                raise InputError(f"must be positive, got {value}", path=self.path, field=key)
            return value
        if default is None:
            raise InputError("missing required field", path=self.path, field=keys[0])
        return default

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {value!r}", path=self.path, field=key)
        return value

    def ints(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise InputError(f"expected a list of integers, got {value!r}", path=self.path, field=key)
        return tuple(value)


# Larger than any model that exists by ~100x (the largest open ones are ~2e12 parameters).
MAX_PARAMS = 1e14


def spec_from_config(
    data: dict[str, Any], *, name: str, source: str, path: Path | None = None, url: str = ""
) -> ModelSpec:
    """Build a ModelSpec from a transformers config mapping (see module docstring)."""
    cfg = _Config(data, path)
    family = data.get("model_type")
    if family not in SUPPORTED_FAMILIES:
        raise InputError(
            f"unsupported model_type {family!r}; supported: {', '.join(SUPPORTED_FAMILIES)}",
            path=path,
            field="model_type",
        )
    from advisor import param_count  # the per-family arithmetic lives there

    fields = param_count.count(family, cfg)
    if fields["params"] > MAX_PARAMS:  # every field positive, yet no model anyone trains
        raise InputError(f"its sizes give {fields['params']:.3g} parameters (over {MAX_PARAMS:.0e}): check "
                         "hidden_size, intermediate_size, num_hidden_layers and vocab_size", path=path,
                         field="hidden_size")
    return ModelSpec(name=name, family=family, source=source, config_url=url or str(path or ""), **fields)
