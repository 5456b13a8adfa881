"""Run folders -> the model variants to evaluate (pure Python: reads records and the headers
of weight files, never torch).

A variant is the base model, or one run: a PEFT adapter applied to the base (LoRA, QLoRA,
DPO, RLHF with an adapter), a full model folder, or a prompt configuration (few-shot
demonstrations prepended to every prompt of the base model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import InputError, first_line
from tunewise.records import RunRecord, load_prompt_config, load_run_record

BASE = "base"


@dataclass(frozen=True)
class VariantSpec:
    name: str  # "base" or the run's (unique) name
    method: str  # "base" or a Method value
    run_dir: str | None = None
    adapter: str | None = None  # PEFT adapter folder
    model: str | None = None  # full model folder
    prompt: str | None = None  # prompt.json (tunewise/prompt/v1)

    @property
    def kind(self) -> str:
        """How it is evaluated: base | adapter | model | prompt."""
        if self.adapter:
            return "adapter"
        if self.model:
            return "model"
        if self.prompt:
            return "prompt"
        return "base"


@dataclass(frozen=True)
class Resolved:
    base_model: str
    variants: list[VariantSpec]  # base first, then the runs in the order given
    warnings: list[str]


def resolve_runs(run_dirs: list[str | Path], base: str | None = None) -> Resolved:
    """Read every run's record; check they share one base model; list the variants.

    `base` (--base) overrides the recorded base model (e.g. a moved local folder).
    """
    if not run_dirs and base is None:
        raise InputError("give at least one run folder (or --base to evaluate a base model alone)")
    records = [(Path(d), load_run_record(d)) for d in run_dirs]
    warnings: list[str] = []
    recorded = _shared_base(records)
    if base is not None and recorded is not None and not _same_model(base, recorded):
        warnings.append(f"evaluating against --base {base}; the runs were trained from {recorded}")
    base_model = base if base is not None else recorded
    assert base_model is not None
    taken = {BASE}
    variants = [VariantSpec(name=BASE, method=BASE)]
    for run_dir, record in records:
        variants.append(_variant(run_dir, record, taken))
    return Resolved(base_model=base_model, variants=variants, warnings=warnings)


def _shared_base(records: list[tuple[Path, RunRecord]]) -> str | None:
    if not records:
        return None
    first_dir, first = records[0]
    for run_dir, record in records[1:]:
        if not _same_model(record.base_model, first.base_model):
            raise InputError(
                f"runs have different base models: {first_dir} ({first.base_model}) vs "
                f"{run_dir} ({record.base_model}); evaluate them separately",
                path=run_dir,
            )
    return first.base_model


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def _variant(run_dir: Path, record: RunRecord, taken: set[str]) -> VariantSpec:
    if record.status != "completed":
        raise InputError(
            f"run {record.name!r} is {record.status}, not completed: nothing to evaluate", path=run_dir
        )
    name = _unique(_slug(record.name or run_dir.name), taken)
    art = record.artifacts
    common = dict(name=name, method=str(record.method), run_dir=str(run_dir))
    if "adapter" in art:
        return VariantSpec(**common, adapter=str(_artifact(run_dir, art["adapter"], "adapter_config.json")))
    if "model" in art:
        return VariantSpec(**common, model=str(_artifact(run_dir, art["model"], "config.json")))
    if "prompt" in art:
        path = run_dir / art["prompt"]
        load_prompt_config(path)  # validate now, before any model is loaded
        return VariantSpec(**common, prompt=str(path))
    raise InputError(
        "record.json lists no adapter, model or prompt artifact to evaluate",
        path=run_dir / "record.json", field="artifacts",
    )


def _artifact(run_dir: Path, rel: str, marker: str) -> Path:
    path = run_dir / rel
    if not (path / marker).is_file():
        raise InputError(f"artifact folder has no {marker}", path=path)
    return path


def check_weights(variants: list[VariantSpec], base_model: str) -> None:
    """Open the safetensors header of every variant (and of a local base folder) before any
    model is evaluated: a truncated or corrupt file otherwise fails with a SafetensorError
    traceback only when its turn comes, after the base and earlier runs were evaluated."""
    folders = [Path(base_model)] if Path(base_model).is_dir() else []
    for variant in variants:
        if variant.adapter:
            _check_adapter_weights(Path(variant.adapter))
        elif variant.model:
            folders.append(Path(variant.model))
    for folder in folders:
        for path in sorted(folder.glob("*.safetensors")):
            check_safetensors(path)


def _check_adapter_weights(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        check_safetensors(weights)
    elif not (folder / "adapter_model.bin").is_file():  # pickled: loaded only with --allow-pickle-weights
        raise InputError("adapter folder has no adapter_model.safetensors", path=folder)


def check_safetensors(path: Path) -> None:
    """One InputError line naming `path` when safetensors cannot read its header (truncated,
    not a safetensors file, header and data sizes disagree).  Opening reads the header only."""
    from safetensors import SafetensorError, safe_open  # the Rust library; no torch with numpy

    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except (SafetensorError, OSError) as exc:
        raise InputError(f"corrupt weights file: {first_line(exc)}", path=path) from None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "run"


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}-{i}", i + 1
    taken.add(candidate)
    return candidate


def prompt_prefix(path: str | Path) -> str:
    """The text a prompt run prepends to every prompt: `prefix` of its prompt.json.

    The prompt runner renders it (demonstrations joined by their separator, ending with
    it), so the evaluator prepends exactly what the run chose and nothing else.
    """
    return load_prompt_config(path).prefix
