"""`plan.yaml`: what `advise` decided and what `run` executes.

    schema: tunewise/plan/v1
    method: lora
    model: meta-llama/Llama-3.1-8B        # hub id or local folder
    data: {train: tickets.jsonl, eval: held_out.jsonl, format: messages}
    settings: {...TrainSettings...}
    hardware: {name: rtx-4090, count: 1, memory_gib: 24.0}
    estimate: {...estimate/v1...}
    reasons: [...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.atomic import atomic_write_yaml
from tunewise.data import FORMATS
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.schema import check_number, check_schema, from_mapping, read_yaml, stamp, to_mapping
from tunewise.settings import MAX_GPUS, TrainSettings


@dataclass(frozen=True)
class DataSpec:
    train: str | None = None  # None only for the prompt method with inline examples
    eval: str | None = None
    format: str | None = None  # prompt_completion | messages | text | preference
    general: str | None = None  # replay data; None: the bundled general corpus

    def __post_init__(self) -> None:
        """A misspelt format would only fail when the runner reads the data: refuse it here."""
        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"expected one of {', '.join(FORMATS)}, got {self.format!r}", field="data.format")


@dataclass(frozen=True)
class HardwareSpec:
    name: str = "cpu"
    count: int = 1
    memory_gib: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.count <= MAX_GPUS:
            raise InputError(f"must be in 1..{MAX_GPUS}, got {self.count}", field="hardware.count")
        check_number("hardware.memory_gib", self.memory_gib, optional=True)


@dataclass(frozen=True)
class Plan:
    method: Method
    model: str
    data: DataSpec = field(default_factory=DataSpec)
    settings: TrainSettings = field(default_factory=TrainSettings)
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    name: str | None = None  # run name; default "<method>"
    init_from: str | None = None  # an earlier run folder to start from (DPO after SFT)
    estimate: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return stamp("plan", to_mapping(self))

    def write(self, path: str | Path) -> Path:
        return atomic_write_yaml(path, self.to_dict())


def load_plan(path: str | Path) -> Plan:
    """Read and validate plan.yaml; relative data paths, and a relative model folder, resolve
    against the plan's folder (advise writes them relative to it, so a plan moves with its
    files and runs from any working directory)."""
    path = Path(path)
    raw = check_schema(read_yaml(path), "plan", path)
    plan = from_mapping(Plan, raw, path)
    base = path.parent
    data = plan.data
    resolved = {
        k: (str((base / v).resolve()) if v and not Path(v).is_absolute() and (base / v).exists() else v)
        for k, v in (("train", data.train), ("eval", data.eval), ("general", data.general))
    }
    from dataclasses import replace

    model = plan.model
    if not Path(model).is_absolute() and (base / model).is_dir():  # a hub id has no folder there
        model = str((base / model).resolve())
    return replace(plan, model=model, data=replace(data, **resolved))
