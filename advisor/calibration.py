"""Learn from runs: per-device MFU and memory corrections fitted to measured runs.

Each completed run (advisor/run_history.py reads them) is re-estimated with today's
formulas for exactly what ran: the model, the settings as run (CPU runs train in fp32), the
devices, and the sequence length the data really had (attention FLOPs follow the mean
example length, the peak batch the longest; packing fills `seq_len`).  Then:

* fitted MFU = measured tokens/s x FLOPs per token / (devices x peak FLOP/s)
  (the definition in compute.py, solved for MFU; tokens/s is the steady-state rate after
  the first logged step when metrics.jsonl has it, else the run's average);
* memory: the measured peak is compared with the part of the estimate it measures (only
  for a process's first run: later runs in one process reuse freed memory, run_history).
  CUDA `max_memory_reserved` sees everything but the CUDA context (and NCCL buffers), so
  it is compared with total - context and corrected by the median *ratio*
  measured / estimated (allocator fragmentation grows with what is allocated).  CPU RSS is
  measured above a baseline taken after the weights were loaded, so it is compared with
  total - weights - runtime and corrected by the median *difference* in GiB (what the
  process adds on CPU is mostly fixed-size: thread pools, oneDNN scratch, allocator caches).

A correction applies only to the device that was measured (the same catalog GPU, or this
machine's CPU model) and to models within SIZE_SPAN of the measured model's parameter
count: a 4M-parameter model's MFU says nothing about a 70B model's.  The MFU comes from
runs of the same method when there are any; otherwise the median measured/default MFU
ratio of the other methods on that device scales the method's default.  The memory
correction uses same-method runs first, then all.  Medians: one odd run (a machine busy
with something else) moves nothing.  Ignored: runs that did not complete, runs shorter
than MIN_STEPS steps or MIN_TRAIN_S seconds (start-up dominates them), and runs whose
model can no longer be resolved.  Every applied correction is stated in the estimate's
assumptions with the runs it came from.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from advisor.compute import sequence_len
from advisor.hardware import Hardware
from advisor.memory import CUDA_CONTEXT_GIB, NCCL_GIB, RUNTIME_GIB_HOST, MemoryBreakdown
from advisor.run_history import Entry, default_sources, local_cpu_name, read_entries
from tunewise.errors import InputError, TunewiseError, first_line
from tunewise.methods import Method

MIN_STEPS = 5
MIN_TRAIN_S = 1.0
SIZE_SPAN = 10.0
SHOW_SOURCES = 3


@dataclass(frozen=True)
class Sample:
    """One usable run on the calibrated device."""

    source: str
    method: Method
    model: str
    params: int
    mfu: float | None  # fitted from the measured throughput
    default_mfu: float  # what the estimator assumes for this method and device
    measured_gib: float | None  # CUDA reserved, or CPU RSS above the baseline
    predicted_gib: float | None  # the estimator's number for the same quantity

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "method": self.method.value, "model": self.model, "params": self.params,
                "mfu": _r(self.mfu), "default_mfu": _r(self.default_mfu), "measured_gib": _r(self.measured_gib),
                "predicted_gib": _r(self.predicted_gib)}


@dataclass(frozen=True)
class Fit:
    """A fitted value and where it came from (for the assumption line)."""

    value: float
    runs: tuple[Sample, ...]
    same_method: bool

    @property
    def where(self) -> str:
        names = [s.source for s in self.runs[:SHOW_SOURCES]]
        more = f", +{len(self.runs) - SHOW_SOURCES} more" if len(self.runs) > SHOW_SOURCES else ""
        return ", ".join(names) + more

    @property
    def count(self) -> str:
        n = len(self.runs)
        return f"{n} local run{'s' if n != 1 else ''}"


@dataclass
class Calibration:
    """What the runs on one device taught; `estimate(..., calibration=)` applies it."""

    hardware: Hardware
    samples: list[Sample] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> runs
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def _scope(self, method: Method, params: int, want) -> tuple[list[Sample], bool]:
        near = [s for s in self.samples if want(s) and _near(s.params, params)]
        same = [s for s in near if s.method is method]
        return (same, True) if same else (near, False)

    def mfu_for(self, method: Method, params: int, default: float) -> Fit | None:
        """Median fitted MFU of same-method runs, else default x median(fitted/default) of the others."""
        runs, same = self._scope(method, params, lambda s: s.mfu)
        if not runs:
            return None
        if same:
            return Fit(statistics.median(s.mfu for s in runs), tuple(runs), True)
        return Fit(default * statistics.median(s.mfu / s.default_mfu for s in runs), tuple(runs), False)

    def memory_for(self, method: Method, params: int) -> Fit | None:
        """GPU: median measured/estimated ratio; CPU: median measured - estimated (GiB)."""
        runs, same = self._scope(method, params, lambda s: s.measured_gib is not None and s.predicted_gib)
        if not runs:
            return None
        if self.hardware.kind == "gpu":
            return Fit(statistics.median(s.measured_gib / s.predicted_gib for s in runs), tuple(runs), same)
        return Fit(statistics.median(s.measured_gib - s.predicted_gib for s in runs), tuple(runs), same)

    def correct_memory(self, mem: MemoryBreakdown, method: Method, params: int, gpus: int
                       ) -> tuple[MemoryBreakdown, str | None]:
        """The breakdown with the measured correction folded into `overhead` (parts still sum to total).

        A negative correction larger than the overhead comes out of the activations (the
        least certain part); nothing goes below zero.
        """
        fit = self.memory_for(method, params)
        if fit is None:
            return mem, None
        part = comparable_gib(mem, self.hardware, gpus)
        if self.hardware.kind == "gpu":
            delta = (fit.value - 1.0) * part
            how = f"reserved peaks x{fit.value:.3f} the estimate"
        else:
            delta = fit.value
            how = "measured minus estimated RSS growth"
        overhead = mem.overhead + delta
        activations = mem.activations + min(0.0, overhead)
        fixed = replace(mem, overhead=max(0.0, overhead), activations=max(0.0, activations))
        scope = ", runs of other methods" if not fit.same_method else ""
        note = (f"memory calibrated for {self.hardware.name}: {delta:+.2f} GiB in overhead ({how}, median of "
                f"{fit.count}{scope}: {fit.where})")
        return fixed, note

    def mfu_note(self, fit: Fit, method: Method, default: float) -> str:
        if fit.same_method:
            return (f"MFU {fit.value:.3g} for {method} on {self.hardware.name}, calibrated from {fit.count} "
                    f"({fit.where}; default {default:.2f})")
        ratio = fit.value / default
        return (f"MFU {fit.value:.3g} for {method} on {self.hardware.name}: default {default:.2f} x {ratio:.3g}, "
                f"the measured/default ratio of {fit.count} of other methods ({fit.where})")

    def summary(self) -> list[str]:
        """One or two lines for the advice notes: what was used, what was skipped."""
        if not self.sources:
            return []
        out = []
        if self.samples:
            by_method = sorted({s.method.value for s in self.samples})
            out.append(f"calibration: {len(self.samples)} measured run(s) on {self.hardware.name} "
                       f"({', '.join(by_method)}) from {', '.join(self.sources)}")
        else:
            out.append(f"calibration: no usable run on {self.hardware.name} in {', '.join(self.sources)}")
        if self.skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            out.append(f"calibration: runs not used: {why}")
        return out + [f"calibration: {w}" for w in self.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware.name, "sources": list(self.sources),
                "samples": [s.to_dict() for s in self.samples], "skipped": dict(self.skipped),
                "warnings": list(self.warnings)}


def comparable_gib(mem: MemoryBreakdown, hardware: Hardware, gpus: int) -> float:
    """The part of an estimate that the runners' measured peak covers (see module docstring)."""
    if hardware.kind == "gpu":
        return mem.total - CUDA_CONTEXT_GIB - (NCCL_GIB if gpus > 1 else 0.0)
    return mem.total - mem.weights - RUNTIME_GIB_HOST


# ----------------------------------------------------------------------------- building


def load_calibration(hardware: Hardware, paths: tuple[str, ...] | list[str] = (), *, history: bool = True,
                     catalog_path: str | None = None) -> Calibration | None:
    """Read `paths` (--calibrate-from) and, with `history`, the default sources; fit for `hardware`.

    None when there was nothing to read at all.
    """
    entries, warnings = read_entries(list(paths), explicit=True)
    sources = [str(p) for p in paths]
    if history:
        auto = [p for p in default_sources() if str(p) not in sources]
        more, more_warnings = read_entries(auto, explicit=False)
        entries, warnings = entries + more, warnings + more_warnings
        sources += [str(p) for p in auto]
    if not sources:
        return None
    cal = calibrate(entries, hardware, catalog_path=catalog_path)
    cal.warnings = warnings + cal.warnings
    cal.sources = sources
    return cal


def calibrate(entries: list[Entry], hardware: Hardware, *, catalog_path: str | None = None,
              cpu_name: str | None = None) -> Calibration:
    """Fit every entry that ran on `hardware`; count the others by reason."""
    cal = Calibration(hardware)
    cpu = cpu_name if cpu_name is not None else (local_cpu_name() if hardware.kind == "cpu" else "")
    seen_keys = set()
    for entry in entries:
        if entry.key in seen_keys:
            continue
        seen_keys.add(entry.key)
        try:
            outcome = _sample(entry, hardware, cpu, catalog_path)
        except (TypeError, ValueError, KeyError, AttributeError, TunewiseError) as exc:
            cal.warnings.append(f"{entry.source}: malformed run record ({first_line(exc)}); skipped")
            continue
        if isinstance(outcome, Sample):
            cal.samples.append(outcome)
        else:
            cal.skipped[outcome] = cal.skipped.get(outcome, 0) + 1
    return cal


def _sample(entry: Entry, hardware: Hardware, cpu: str, catalog_path: str | None) -> Sample | str:
    """A Sample, or the reason the run is not used."""
    run = entry.run
    if run.get("status") != "completed":
        return "not completed"
    method = Method(run["method"])
    if not method.trains:
        return "without training (prompt)"
    if int(run.get("steps") or 0) < MIN_STEPS or float(run.get("train_time_s") or 0) < MIN_TRAIN_S:
        return f"too short (< {MIN_STEPS} steps or < {MIN_TRAIN_S:g} s)"
    hw = run.get("hardware") or {}
    if not _same_device(hw, hardware, cpu, catalog_path):
        return "on other hardware"
    from advisor.models import resolve_model

    try:
        spec = resolve_model(str(run["base_model"]))
    except InputError:
        return "with a model that is no longer available"
    return _fit_run(entry, run, method, spec, hardware, int(hw.get("count") or 1))


def _fit_run(entry: Entry, run: dict[str, Any], method: Method, spec, hardware: Hardware, gpus: int) -> Sample:
    from advisor import compute

    replay = Replay.of(run, method, spec, hardware, gpus)
    rate = run.get("steady_tokens_per_s") or run.get("tokens_per_s")
    peak = hardware.peak_tflops(replay.settings.precision)
    mfu = float(rate) * replay.flops_per_token() / (gpus * peak * 1e12) if rate and peak else None
    if method is Method.RLHF:  # its time includes bandwidth-bound generation (compute.rlhf_generation_hours)
        mfu = None
    comparable = replay.memory_settings is not None and run.get("first_in_process") is not False
    measured = _measured_gib(run.get("peak_memory") or {}, hardware) if comparable else None
    return Sample(
        source=_label(entry), method=method, model=spec.name, params=spec.params, mfu=mfu,
        default_mfu=compute.default_mfu(method, hardware), measured_gib=measured,
        predicted_gib=replay.memory_gib() if measured is not None else None,
    )


@dataclass(frozen=True)
class Replay:
    """Exactly what a recorded run did, ready to be re-estimated (fits and benchmarks use it)."""

    spec: Any
    method: Method
    hardware: Hardware
    gpus: int
    settings: Any  # TrainSettings as run
    flops_settings: Any  # seq_len = the mean example length (attention FLOPs)
    memory_settings: Any  # seq_len = the longest example; None when the record lacks it
    adapter: bool

    @classmethod
    def of(cls, run: dict[str, Any], method: Method, spec, hardware: Hardware, gpus: int) -> Replay:
        from tunewise.settings import TrainSettings

        config = run.get("config") or {}
        known = TrainSettings.__dataclass_fields__
        settings = TrainSettings(**{k: v for k, v in (config.get("settings") or {}).items() if k in known})
        data = config.get("data") or {}
        start = config.get("start") or {}
        adapter = method.uses_adapter or (method is Method.DPO and start.get("lora", True) is not False)
        # without the longest example's length (older records) the peak cannot be re-estimated
        longest = data.get("tokens_max") or (
            None if data.get("tokens_mean") and not settings.packing else settings.seq_len)
        return cls(spec, method, hardware, gpus, settings,
                   settings.replace(seq_len=sequence_len(settings, data.get("tokens_mean"))),
                   settings.replace(seq_len=sequence_len(settings, longest)) if longest else None, adapter)

    def flops_per_token(self) -> float:
        from advisor import compute

        return compute.flops_per_token(self.spec, self.method, self.flops_settings, adapter=self.adapter)

    def tokens_per_s(self, calibration: Calibration | None = None) -> float | None:
        """The estimator's throughput for this run (calibrated when given)."""
        est = self._estimate(self.flops_settings, calibration, tokens=10**9)
        return est.tokens / (est.time_hours * 3600) if est.time_hours else None

    def memory_gib(self, calibration: Calibration | None = None) -> float | None:
        """The estimator's value for what the runner measured (see comparable_gib)."""
        if self.memory_settings is None:
            return None
        return comparable_gib(self._estimate(self.memory_settings, calibration).memory, self.hardware, self.gpus)

    def _estimate(self, settings, calibration, tokens: int | None = None):
        from advisor.estimate import estimate
        from advisor.memory import MemoryKnobs

        return estimate(self.spec, self.method, self.hardware, settings.replace(max_steps=None), gpus=self.gpus,
                        tokens=tokens, knobs=MemoryKnobs(preference_adapter=self.adapter), calibration=calibration)


def replay_entry(entry: Entry, hardware: Hardware) -> Replay:
    """`Replay` of one history entry or record (InputError if its model is gone)."""
    from advisor.models import resolve_model

    run = entry.run
    method = Method(run["method"])
    return Replay.of(run, method, resolve_model(str(run["base_model"])), hardware,
                     int((run.get("hardware") or {}).get("count") or 1))


def _measured_gib(peak: dict[str, Any], hardware: Hardware) -> float | None:
    value = peak.get("reserved_gib") if hardware.kind == "gpu" else peak.get("rss_delta_gib")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _same_device(hw: dict[str, Any], hardware: Hardware, cpu: str, catalog_path: str | None) -> bool:
    """Did this run execute on `hardware`?  CUDA: the device name resolves to the same
    catalog row; CPU: the same CPU model as this machine (the `cpu` row is generic)."""
    device, name = hw.get("device"), str(hw.get("name") or "")
    if hardware.kind == "cpu":
        return device == "cpu" and bool(name) and name == cpu
    if hardware.kind != "gpu" or device != "cuda" or not name:
        return False
    from advisor.hardware import _norm, resolve_hardware

    try:
        return resolve_hardware(name, catalog_path=catalog_path).name == hardware.name
    except InputError:
        return _norm(name) == _norm(hardware.name)


def _near(params: int, target: int) -> bool:
    return target / SIZE_SPAN <= params <= target * SIZE_SPAN


def _label(entry: Entry) -> str:
    """runs/lora for a record.json; history.jsonl:12 (name) for an index line."""
    source = entry.source
    if source.endswith("record.json"):
        return source[: -len("/record.json")] or source
    path, _, line = source.rpartition(":")
    return f"{entry.run.get('name')} ({path.rsplit('/', 1)[-1]}:{line})"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)

