"""LoRA adapter sizes, counted the way PEFT 0.21 builds them (exactly, not approximately).

A LoRA adapter on a linear layer d_in -> d_out adds r*(d_in + d_out) parameters (LoRA,
arXiv:2106.09685: ΔW = BA with B ∈ R^{d_out×r}, A ∈ R^{r×d_in}); on an embedding it adds
r*(vocab + hidden).  Target matching follows PEFT's `check_target_module_exists`: a name
matches a module whose full path equals it or ends with "." + name; "all-linear" means
every nn.Linear/Conv1D except the output head (peft `_maybe_include_all_linear_layers`).

transformers 5 fuses MoE experts into 3-D parameters.  For the model types PEFT converts
(`models.PEFT_MOE_CONVERSION`), the v4 names (w1/w3/w2, gate_proj/up_proj/down_proj, gate)
become parameter targets: the router [E, h] gets r*(h + E); the fused gate_up [E, 2I, h]
gets rank 2r per expert when both halves are targeted, i.e. 2r*E*(h + 2I); down [E, h, I]
gets r*E*(I + h) (peft `utils/transformers_weight_conversion.py`, `rank_pattern` doubling).
The integration test compares these counts with `get_peft_model` on meta-device models.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.models import PEFT_MOE_CONVERSION, ModelSpec
from tunewise.errors import InputError

_EMBEDDING_NAMES = {
    "gpt2": "wte",
    "gpt_neox": "embed_in",
    "falcon": "word_embeddings",
    "bloom": "word_embeddings",
}


@dataclass(frozen=True)
class AdapterPlan:
    """Which modules get LoRA and how many trainable parameters that makes."""

    trainable_params: int
    modules: tuple[str, ...]  # per-layer module paths (+ "lm_head"/embedding/expert targets)
    unmatched: tuple[str, ...]  # requested names that matched nothing (PEFT ignores them)

    @property
    def adapted_per_layer(self) -> int:
        return sum(1 for m in self.modules if m not in ("lm_head",))


def parse_targets(targets: str | list[str]) -> str | list[str]:
    """'all-linear' or a comma list / list of module names (as PEFT's target_modules)."""
    if isinstance(targets, str):
        if targets.strip().lower() == "all-linear":
            return "all-linear"
        targets = targets.split(",")
    names = [t.strip() for t in targets if t.strip()]
    if not names:
        raise InputError("must name modules or be 'all-linear'", field="lora_targets")
    return names


def plan_adapter(spec: ModelSpec, rank: int, targets: str | list[str]) -> AdapterPlan:
    """Trainable LoRA parameters for `rank` on `targets`, equal to PEFT's count."""
    if rank <= 0:
        raise InputError(f"must be positive, got {rank}", field="lora_rank")
    wanted = parse_targets(targets)
    conversion = PEFT_MOE_CONVERSION.get(spec.family) if spec.is_moe else None
    layer_modules = [(p, i, o) for p, i, o in spec.layer_linears]
    if wanted == "all-linear":
        chosen = layer_modules
        moe_parts = {"router", "gate_up", "down"} if conversion else set()
        extra: list[tuple[str, int, int]] = []
        unmatched: tuple[str, ...] = ()
    else:
        chosen = [m for m in layer_modules if any(_matches(m[0], t) for t in wanted)]
        moe_parts = _moe_parts(spec, conversion, wanted) if conversion else set()
        extra = _outer_modules(spec, wanted)
        unmatched = tuple(
            t for t in wanted
            if not any(_matches(m[0], t) for m in layer_modules)
            and not any(name == t for name, _, _ in extra)
            and not (conversion and t in conversion)
        )
        if not chosen and not extra and not moe_parts:
            raise InputError(
                f"none of {', '.join(wanted)} is a linear module of {spec.name}; "
                f"choose from: {', '.join(sorted({p.rsplit('.', 1)[-1] for p, _, _ in layer_modules}))} "
                "or 'all-linear'",
                field="lora_targets",
            )
    dense_layers = spec.n_layers
    per_layer = sum(rank * (i + o) for _, i, o in chosen)
    total = per_layer * dense_layers - _missing_dense(spec, chosen, rank)
    total += _moe_adapter(spec, rank, moe_parts)
    total += sum(rank * (i + o) for _, i, o in extra)
    names = tuple(p for p, _, _ in chosen) + tuple(f"experts.{x}" for x in sorted(moe_parts))
    return AdapterPlan(total, names + tuple(n for n, _, _ in extra), unmatched)


def _matches(path: str, target: str) -> bool:
    return path == target or path.endswith("." + target)


def _moe_parts(spec: ModelSpec, conversion: dict[str, str], wanted: list[str]) -> set[str]:
    parts: dict[str, set[str]] = {}
    for name in wanted:
        if name in conversion:
            parts.setdefault(conversion[name], set()).add(name)
    halves = {k for k, v in conversion.items() if v == "gate_up"}
    if "gate_up" in parts and parts["gate_up"] != halves:
        missing = ", ".join(sorted(halves - parts["gate_up"]))
        raise InputError(
            f"{spec.family} fuses {' and '.join(sorted(halves))} into one expert tensor; "
            f"target {missing} as well",
            field="lora_targets",
        )
    return set(parts)


def _moe_adapter(spec: ModelSpec, rank: int, parts: set[str]) -> int:
    h, n_exp, inter = spec.hidden, spec.n_experts, spec.moe_intermediate
    per_layer = 0
    if "router" in parts:
        per_layer += rank * (h + n_exp)
    if "gate_up" in parts:
        per_layer += 2 * rank * n_exp * (h + 2 * inter)
    if "down" in parts:
        per_layer += rank * n_exp * (inter + h)
    return per_layer * spec.sparse_layers


def _missing_dense(spec: ModelSpec, chosen: list[tuple[str, int, int]], rank: int) -> int:
    """Adapters counted per layer that only exist in some layers (MoE dense vs sparse)."""
    if not spec.is_moe:
        return 0
    n_dense = spec.n_layers - spec.sparse_layers
    missing = 0
    for path, i, o in chosen:
        in_sparse_only = path.startswith("mlp.shared_expert")
        in_dense_only = path.startswith("mlp.") and not in_sparse_only
        if in_sparse_only:
            missing += rank * (i + o) * n_dense
        elif in_dense_only:
            missing += rank * (i + o) * spec.sparse_layers
    return missing


def _outer_modules(spec: ModelSpec, wanted: list[str]) -> list[tuple[str, int, int]]:
    """lm_head / input embedding targets (outside the decoder layers)."""
    extra = []
    if "lm_head" in wanted:
        extra.append(("lm_head", spec.hidden, spec.vocab))
    embed = _EMBEDDING_NAMES.get(spec.family, "embed_tokens")
    if embed in wanted:
        extra.append((embed, spec.vocab, spec.hidden))
    return extra
