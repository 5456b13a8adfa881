"""`tunewise advise --probe`: a few real training steps of the advised plan on this machine.

The advised plan runs through `run_plan` (the same runner, settings and data as `tunewise
run` would use) for `steps` optimizer steps into a temporary folder, and the measurement
is set next to the advisor's analytic numbers:

    measured tokens/s   steady state: tokens over seconds of every logged step but the
                        first (which pays for lazy initialisation; run_history.steady_tokens_per_s)
    time from measured  the estimate's training tokens / measured tokens/s
    cost from measured  time x the estimate's price per device-hour x devices
    peak memory         CUDA max_memory_reserved, or CPU RSS growth during training,
                        against the same part of the estimate (calibration.comparable_gib)

The completed probe lands in the run history like any run (runners.run_plan), so the
next `advise` on this hardware is calibrated by it.  torch is imported only here, only
when --probe is given.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advisor.run_history import steady_tokens_per_s
from tunewise.errors import InputError

PROBE_STEPS = 10
# checkpoints would only slow the probe down: it is thrown away
NO_CHECKPOINTS = 10**9


@dataclass
class ProbeResult:
    """Measured vs analytic numbers for the advised configuration."""

    method: str
    device: str  # cpu | cuda
    device_name: str
    steps: int
    train_time_s: float
    tokens_per_s: float | None  # steady state
    tokens_per_s_average: float | None  # over the whole probe, first step included
    measured_gib: float | None
    memory_kind: str  # "CUDA reserved peak" | "CPU RSS growth"
    analytic_tokens_per_s: float | None
    analytic_gib: float | None  # the estimate's value for the measured quantity
    analytic_total_gib: float | None
    tokens: int | None  # training tokens of the full run (from the estimate)
    analytic_hours: float | None
    analytic_cost_usd: float | None
    measured_hours: float | None
    measured_cost_usd: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(advice, *, steps: int = PROBE_STEPS, device: str = "auto") -> ProbeResult:
    """Train the advised plan for `steps` steps on this machine and measure it."""
    from runners import run_plan

    if steps < 2:
        raise InputError(f"must be at least 2 (the first step is warm-up), got {steps}", field="probe_steps")
    if not advice.method.trains:
        raise InputError(f"nothing to probe: the advice is {advice.method.value}, which does not train; add "
                         "--method lora (or another training method) to probe it", field="probe")
    if not advice.request.data:
        raise InputError("--probe trains on your data: pass --data", field="probe")
    device = _device_for(advice.hardware, device)
    plan = advice.plan
    settings = plan.settings.replace(max_steps=steps, logging_steps=1, save_steps=NO_CHECKPOINTS)
    from dataclasses import replace

    plan = replace(plan, settings=settings, name="probe")
    with tempfile.TemporaryDirectory(prefix="tunewise-probe-") as tmp:
        record = run_plan(plan, tmp, device=device)
        rows = _metrics(Path(tmp) / "probe" / "metrics.jsonl")
    return _result(advice, record, steady_tokens_per_s(rows))


def _device_for(hardware: dict[str, Any], requested: str) -> str:
    """The advice is for a kind of device; the probe can only measure this machine's."""
    import torch

    if hardware.get("kind") == "gpu":
        if not torch.cuda.is_available():
            raise InputError(f"--probe measures this machine, which has no CUDA GPU, but the advice is for "
                             f"{hardware['name']}: probe on that GPU, or advise for --gpu cpu", field="probe")
        return "cuda"
    if hardware.get("kind") == "cpu":
        return "cpu"
    return requested


def _result(advice, record, steady: float | None) -> ProbeResult:
    from advisor.calibration import comparable_gib
    from advisor.hardware import resolve_hardware
    from advisor.memory import MemoryBreakdown

    est = advice.chosen.estimate
    gpus = advice.hardware["count"]
    tokens, hours, cost = est.get("tokens"), est.get("time_hours"), est.get("cost_usd")
    analytic_tps = tokens / (hours * 3600) if tokens and hours else None
    rate = steady or record.tokens_per_s
    measured_hours = tokens / rate / 3600 if tokens and rate else None
    mem = {k: v for k, v in est["memory_gib"].items() if k != "total"}
    hw = resolve_hardware(advice.hardware["name"], advice.hardware["memory_gib"], advice.request.hardware_file)
    price = advice.request.price_usd_per_hour if advice.request.price_usd_per_hour is not None else hw.usd_per_hour
    measured_cost = measured_hours * price * gpus if measured_hours is not None and price is not None else None
    analytic_gib = comparable_gib(MemoryBreakdown(**mem), hw, gpus)
    peak = record.peak_memory
    notes = _notes(advice, record, steady)
    return ProbeResult(
        method=record.method, device=record.hardware.get("device", "?"), device_name=record.hardware.get("name", "?"),
        steps=record.steps, train_time_s=record.train_time_s or 0.0, tokens_per_s=_round(rate),
        tokens_per_s_average=record.tokens_per_s, measured_gib=peak.comparable_gib if peak else None,
        memory_kind="CUDA reserved peak" if hw.kind == "gpu" else "CPU RSS growth during training",
        analytic_tokens_per_s=_round(analytic_tps), analytic_gib=round(analytic_gib, 4),
        analytic_total_gib=est["memory_gib"]["total"], tokens=tokens, analytic_hours=hours, analytic_cost_usd=cost,
        measured_hours=measured_hours, measured_cost_usd=measured_cost, notes=notes,
    )


def _notes(advice, record, steady: float | None) -> list[str]:
    notes = []
    if steady is None:
        notes.append("too few logged steps for a steady-state rate: the average includes the first step")
    planned = advice.hardware["name"]
    if record.hardware.get("device") == "cuda":
        from advisor.hardware import resolve_hardware

        try:
            local = resolve_hardware(record.hardware.get("name", ""), catalog_path=advice.request.hardware_file).name
        except InputError:
            local = record.hardware.get("name", "?")
        if local != planned:
            notes.append(f"measured on {record.hardware.get('name')}, the advice is for {planned}: "
                         "the measured time and cost describe this GPU")
    settings = record.config.get("settings", {})
    if settings.get("precision") != advice.chosen.settings.precision:
        notes.append(f"ran in {settings.get('precision')} ({record.config.get('runtime', {}).get('reason', '')}); "
                     f"the estimate assumed {advice.chosen.settings.precision}")
    notes.append("the probe's batches need not include the longest example: the full run's peak can be higher")
    from advisor.run_history import history_enabled, history_path

    if history_enabled():
        notes.append(f"the probe joined the run history ({history_path()}): the next advise or estimate on this "
                     "hardware is calibrated by it")
    return notes


def _metrics(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
