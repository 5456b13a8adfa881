"""Read-only views of the advisor's artifacts (estimate/v1, advice/v1) for the report.

The advisor's own dataclasses live in `advisor/` and the report must not depend on their
internals (DESIGN.md: a stage reads only the previous stage's *file*).  These views are
strict where a mistake would silently mislead (the schema id, the type of every number
we plot) and tolerant where the producer may legitimately leave a part out: a missing
optional field becomes None and the report says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.text import MEMORY_PARTS, finite
from tunewise.errors import InputError
from tunewise.schema import check_schema, schema_id


@dataclass(frozen=True)
class EstimateView:
    """One estimate/v1 mapping (DESIGN.md "Estimate"), plus the advice's verdict if any."""

    method: str
    model: str | None
    hardware: str | None
    gpus: int
    hardware_memory_gib: float | None
    memory: dict[str, float]  # parts present, in MEMORY_PARTS order (per device)
    total_gib: float | None
    fits: bool | None
    supported: bool | None
    tokens: int | None
    time_hours: float | None
    cost_usd: float | None
    usd_per_hour: float | None
    verdict: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AdviceView:
    """advice/v1: the recommendation, one candidate per method, the data profile."""

    method: str | None
    reasons: list[str]
    hyperparameters: dict[str, Any]
    candidates: list[EstimateView]
    data: dict[str, Any]
    plan: str | None
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    derivations: list[dict[str, Any]] = field(default_factory=list)  # field, value, rule, reason


def _number(obj: dict, key: str, path, where: str) -> float | None:
    """obj[key] as a float; None when absent/null; InputError when it is not a number."""
    value = obj.get(key)
    if value is None:
        return None
    number = finite(value)
    if number is None:
        raise InputError(f"expected a number, got {value!r}"[:200], path=path, field=where + key)
    return number


def _mapping(obj: dict, key: str, path, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"expected a mapping, got {type(value).__name__}", path=path, field=where + key)
    return value


def _strings(obj: dict, key: str, path, where: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {type(value).__name__}", path=path, field=where + key)
    return [str(v) for v in value]


def _optional_bool(obj: dict, key: str) -> bool | None:
    value = obj.get(key)
    return value if isinstance(value, bool) else None


def parse_estimate(raw: Any, path: str | Path | None = None, where: str = "") -> EstimateView:
    """Validate and view one estimate/v1 mapping.

    A nested estimate (inside advice, a plan or a run record) may omit the schema id, but
    a *wrong* id is refused: it would mean a different contract.
    """
    if not isinstance(raw, dict):
        raise InputError(f"expected a mapping, got {type(raw).__name__}", path=path, field=where.rstrip(".") or None)
    if "schema" in raw and raw["schema"] != schema_id("estimate"):
        raise InputError(
            f"unsupported schema {raw['schema']!r}; this tunewise reads {schema_id('estimate')!r}",
            path=path,
            field=where + "schema",
        )
    method = raw.get("method")
    if not isinstance(method, str) or not method:
        raise InputError("missing or empty method", path=path, field=where + "method")
    model = _mapping(raw, "model", path, where)
    hardware = _mapping(raw, "hardware", path, where)
    memory_raw = _mapping(raw, "memory_gib", path, where)
    memory = {}
    for part in MEMORY_PARTS:
        value = _number(memory_raw, part, path, where + "memory_gib.")
        if value is not None:
            memory[part] = value
    count = hardware.get("count", raw.get("gpus", 1))
    return EstimateView(
        method=method,
        model=str(model["name"]) if model.get("name") is not None else None,
        hardware=str(hardware["name"]) if hardware.get("name") is not None else None,
        gpus=count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1,
        hardware_memory_gib=_number(hardware, "memory_gib", path, where + "hardware."),
        memory=memory,
        total_gib=_number(memory_raw, "total", path, where + "memory_gib."),
        fits=_optional_bool(raw, "fits"),
        supported=_optional_bool(raw, "supported"),
        tokens=_int_or_none(raw.get("tokens")),
        time_hours=_number(raw, "time_hours", path, where),
        cost_usd=_number(raw, "cost_usd", path, where),
        usd_per_hour=_number(hardware, "usd_per_hour", path, where + "hardware."),
        verdict=_verdict_text(raw.get("verdict")),
        settings=_mapping(raw, "settings", path, where),
        warnings=_strings(raw, "warnings", path, where),
        assumptions=_strings(raw, "assumptions", path, where),
        raw=raw,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _verdict_text(value: Any) -> str | None:
    """The candidate's verdict as text: a string, or a mapping's label/summary/verdict."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("label", "summary", "verdict", "status"):
            if isinstance(value.get(key), str):
                return value[key]
    return str(value)


def parse_advice(raw: Any, path: str | Path) -> AdviceView:
    """Validate and view advice/v1 (DESIGN.md "Advice")."""
    raw = check_schema(raw, "advice", path)
    rec = _mapping(raw, "recommendation", path, "")
    method = rec.get("method")
    if method is not None and not isinstance(method, str):
        raise InputError(f"expected a string, got {method!r}"[:200], path=path, field="recommendation.method")
    cands = raw.get("candidates") or []
    if not isinstance(cands, list):
        raise InputError(f"expected a list, got {type(cands).__name__}", path=path, field="candidates")
    plan = raw.get("plan")
    return AdviceView(
        method=method,
        reasons=_strings(rec, "reasons", path, "recommendation."),
        hyperparameters=_mapping(rec, "hyperparameters", path, "recommendation."),
        candidates=[parse_estimate(c, path, f"candidates[{i}].") for i, c in enumerate(cands)],
        data=_mapping(raw, "data", path, ""),
        plan=str(plan) if plan is not None else None,
        path=str(path),
        notes=_strings(rec, "notes", path, "recommendation."),
        derivations=[d for d in rec.get("derivations") or [] if isinstance(d, dict)],
    )
