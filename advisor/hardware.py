"""The hardware catalog: memory, peak 16-bit FLOP/s, a default price, and what is supported.

Rows live in `advisor/hardware_catalog.json` (one row per accelerator, each price with its
source and date).  Users add devices or override prices with a YAML file of the same shape:

    hardware:                      # full rows, added or replacing a built-in row by name
      - {name: my-a100, kind: gpu, memory_gib: 80, bf16_tflops: 312, usd_per_hour: 1.1}
    prices:                        # or just new prices for known rows
      rtx-4090: 0.35

Lookup: exact name or alias (case, spaces, dashes and underscores ignored), then the
regex `patterns` in table order, more specific rows first ("h100 pcie" before "h100"), so
device strings such as "NVIDIA H100 PCIe" resolve.  A pattern matches whole tokens only:
no letter or digit may touch either end of the match, so "a100" finds "NVIDIA A100-SXM4-80GB"
but not "rtx-a1000" (an 8 GB card), and "h200" not "gh200".  An unknown name is an error
naming the close catalog names and asking for --gpu-mem-gib: we never guess a memory size
(nanochat `get_peak_flops` does the same for FLOP/s: an unknown GPU is reported, not guessed).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, UnknownHardwareError
from tunewise.schema import check_number

CATALOG_PATH = Path(__file__).with_name("hardware_catalog.json")

# Share of the reported memory a training process can use.  Apple: macOS lets the GPU wire
# about 75% of unified memory by default (Metal recommendedMaxWorkingSetSize); CPU: the OS
# and desktop keep some RAM (assumption: 15%).  CUDA memory is what the device reports; the
# CUDA context is counted in the estimate's overhead instead.
USABLE_FRACTION = {"gpu": 1.0, "apple": 0.75, "cpu": 0.85}


# Optional numbers of a row: positive where zero makes no sense (a peak, a bandwidth, a
# core count), non-negative where zero is real (a free device, no fixed step overhead).
_POSITIVE_FIELDS = ("bf16_tflops", "fp32_tflops", "memory_bandwidth_gbs", "interconnect_gbs", "cores")
_NON_NEGATIVE_FIELDS = ("usd_per_hour", "step_overhead_s")


@dataclass(frozen=True)
class Hardware:
    """One accelerator (or the CPU), per device."""

    name: str
    kind: str  # "gpu" | "apple" | "cpu"
    memory_gib: float
    bf16_tflops: float | None  # dense 16-bit tensor peak (fp16 where bf16 is missing); None: unknown
    usd_per_hour: float | None = None
    price_source: str = ""
    price_date: str = ""
    fp32_tflops: float | None = None
    tflops_source: str = ""
    memory_bandwidth_gbs: float | None = None
    bf16: bool = True
    flash_attention: bool = True
    fp8: bool = False
    bnb_4bit: bool = True  # bitsandbytes NF4 (QLoRA)
    bnb_8bit_optimizer: bool = True  # bitsandbytes 8-bit AdamW
    paged_optimizer: bool = True  # bitsandbytes paged optimizers (CUDA unified memory)
    note: str = ""
    aliases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    # Fixed seconds per training micro-step (Python, op dispatch, Trainer bookkeeping) on top
    # of the FLOPs: what dominates small models.  None: not measured for this device.
    step_overhead_s: float | None = None
    step_overhead_source: str = ""
    cores: int | None = None  # CPU rows: cores the peak counts (training threads use them)
    # GPU-to-GPU link inside a node (NVLink/NVSwitch, Infinity Fabric or PCIe), peak GB/s in
    # one direction per GPU, for the communication term of multi-GPU time (advisor/scaleout.py)
    interconnect: str = ""
    interconnect_gbs: float | None = None
    interconnect_source: str = ""

    def __post_init__(self) -> None:
        """Every number feeds memory, time and cost: NaN or infinity would print `$inf` or
        invalid JSON, a negative time a negative cost, so each must be finite and in range."""
        if self.kind not in USABLE_FRACTION:
            raise InputError(f"expected gpu, apple or cpu, got {self.kind!r}", field="kind")
        check_number("memory_gib", self.memory_gib)
        for name in _POSITIVE_FIELDS:
            check_number(name, getattr(self, name), optional=True)
        for name in _NON_NEGATIVE_FIELDS:
            check_number(name, getattr(self, name), optional=True, zero_ok=True)

    def default_precision(self) -> str:
        """The precision to train in when the user names none: bf16 where the device has it,
        else fp16 (T4, Apple M1), and fp32 on CPUs (no fast 16-bit matmuls without AMX);
        the same rules as advisor/hyperparams.py's precision rules."""
        if self.kind == "cpu":
            return "fp32"
        return "bf16" if self.bf16 else "fp16"

    @property
    def usable_gib(self) -> float:
        """Memory a training process may fill (see USABLE_FRACTION)."""
        return self.memory_gib * USABLE_FRACTION[self.kind]

    def peak_tflops(self, precision: str) -> float | None:
        """Peak FLOP/s (in TFLOP/s) for matmuls in `precision`."""
        if precision == "fp32":
            return self.fp32_tflops or self.bf16_tflops
        return self.bf16_tflops

    def summary(self, count: int = 1) -> dict[str, Any]:
        """The `hardware` block of the estimate/v1 contract."""
        return {"name": self.name, "count": count, "memory_gib": round(self.memory_gib, 2)}


def list_hardware(catalog_path: str | Path | None = None) -> list[Hardware]:
    """Built-in rows, with a user YAML file's rows and prices applied."""
    rows = [dict(r) for r in _builtin_rows()]
    if catalog_path is not None:
        rows = _apply_user_file(rows, Path(catalog_path))
    return [_build(r) for r in rows]


def resolve_hardware(
    name: str | None, memory_gib: float | None = None, catalog_path: str | Path | None = None
) -> Hardware:
    """Look up `name`; `memory_gib` overrides the memory (or describes an unknown device).

    name None: the CPU of this machine (its RAM unless `memory_gib` is given).
    """
    if memory_gib is not None:
        check_number("gpu_mem_gib", memory_gib)
    rows = list_hardware(catalog_path)
    wanted = (name or "cpu").strip()
    found = _find(rows, wanted)
    if found is None:
        if memory_gib is None:
            raise UnknownHardwareError(_unknown_message(rows, wanted), field="gpu")
        return Hardware(name=wanted, kind="gpu", memory_gib=float(memory_gib), bf16_tflops=None,
                        note="user-described device: memory only, no FLOP/s or price on file")
    if memory_gib is not None:
        return dataclasses.replace(found, memory_gib=float(memory_gib))
    return found


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.lower())


def _find(rows: list[Hardware], wanted: str) -> Hardware | None:
    key = _norm(wanted)
    for row in rows:
        if key == _norm(row.name) or key in {_norm(a) for a in row.aliases}:
            return row
    for row in rows:  # table order: more specific patterns first
        if any(_token_regex(p).search(wanted.lower()) for p in row.patterns):
            return row
    return None


@functools.cache
def _token_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` as a whole-token match: no letter or digit right before or after it, so
    that "a100" does not find the 8 GB "rtx-a1000" nor "h200" the "gh200"."""
    return re.compile(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])")


def _close_names(rows: list[Hardware], wanted: str, limit: int = 4) -> list[str]:
    """Catalog rows whose name or an alias is like `wanted` or like one of its model numbers
    (a device string such as "NVIDIA GH200 480GB" is compared word by word too), best first."""
    words = re.split(r"[^a-z0-9]+", wanted.lower())
    queries = {_norm(wanted), *(w for w in words if len(w) >= 3 and any(c.isdigit() for c in w))}
    scores: dict[str, float] = {}
    for row in rows:
        for name in (row.name, *row.aliases):
            key = _norm(name)
            score = max(difflib.SequenceMatcher(None, q, key).ratio() for q in queries)
            if score >= 0.7:
                scores[row.name] = max(score, scores.get(row.name, 0.0))
    return sorted(scores, key=lambda n: -scores[n])[:limit]


def _unknown_message(rows: list[Hardware], wanted: str) -> str:
    """One line for a name no row matches: the close catalog names, then how to go on."""
    near = _close_names(rows, wanted)
    hint = f"close names: {', '.join(near)}" if near else "no close name in the catalog"
    return (f"unknown GPU {wanted!r} ({hint}; `tunewise estimate --list-hardware` lists all); "
            "pass --gpu-mem-gib with its memory in GiB (or add it with --hardware-file)")


@functools.cache
def _builtin_rows() -> tuple[dict[str, Any], ...]:
    with CATALOG_PATH.open(encoding="utf-8") as fh:
        return tuple(json.load(fh)["hardware"])


_FIELDS = {f.name for f in dataclasses.fields(Hardware)}


def _build(row: dict[str, Any], path: Path | None = None, where: str = "") -> Hardware:
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}", path=path, field=where + unknown[0])
    row = dict(row)
    if path is not None:
        _check_names(row, path, where)
    for key in ("aliases", "patterns"):
        row[key] = tuple(row.get(key) or ())
    if row.get("memory_gib") is None and row.get("kind") == "cpu":
        row["memory_gib"] = _this_machine_ram_gib()  # the built-in `cpu` row: this machine
    if row.get("kind") == "cpu" and row.get("fp32_tflops") is None:
        row.update(_this_machine_cpu_peak())
    try:
        if path is not None:  # a user's row: wrong types named per field, not a TypeError deep inside
            from tunewise.schema import from_mapping

            return from_mapping(Hardware, row, path)  # the except below prefixes the field
        return Hardware(**row)
    except TypeError as exc:
        raise InputError(f"invalid hardware row: {exc}", path=path, field=where.rstrip(".") or None) from None
    except InputError as exc:
        raise InputError(exc.message, path=path, field=where + (exc.field or "")) from None


def _check_names(row: dict[str, Any], path: Path, where: str) -> None:
    """A user row's aliases and patterns: lists of strings, each pattern a valid regex.
    Checked when the file loads, so that a broken pattern is named with its file and field
    instead of failing as re.error at the first lookup that reaches it."""
    for key in ("aliases", "patterns"):
        values = row.get(key) or []
        if not isinstance(values, list):
            raise InputError(f"expected a list of strings, got {type(values).__name__}", path=path, field=where + key)
        for j, value in enumerate(values):
            field = f"{where}{key}[{j}]"
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"expected a non-empty string, got {value!r}", path=path, field=field)
            if key == "patterns":
                _check_pattern(value, path, field)


def _check_pattern(pattern: str, path: Path, field: str) -> None:
    try:  # alone too: wrapping may balance a stray parenthesis ("a)|(b")
        re.compile(pattern)
        _token_regex(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise InputError(f"not a valid regular expression: {exc}", path=path, field=field) from None


def _check_price(price: Any, path: Path, field: str) -> float:
    """A price from the user's file: a finite number >= 0 (0: a device you already own)."""
    try:
        check_number(field, price, zero_ok=True)
    except InputError as exc:
        raise InputError(exc.message, path=path, field=field) from None
    return float(price)


def _apply_user_file(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    from tunewise.schema import read_yaml

    data = read_yaml(path) or {}
    if not isinstance(data, dict) or set(data) - {"hardware", "prices"}:
        raise InputError("expected a mapping with 'hardware' and/or 'prices'", path=path)
    if not isinstance(data.get("hardware") or [], list):
        raise InputError("expected a list of device rows", path=path, field="hardware")
    if not isinstance(data.get("prices") or {}, dict):
        raise InputError("expected a mapping of device name -> $ per hour", path=path, field="prices")
    by_name = {_norm(r["name"]): i for i, r in enumerate(rows)}
    for i, row in enumerate(data.get("hardware") or []):
        if not isinstance(row, dict) or "name" not in row:
            raise InputError("each row needs a 'name'", path=path, field=f"hardware[{i}]")
        row = {"kind": "gpu", "bf16_tflops": None, **row, "name": str(row["name"])}
        _build(row, path, f"hardware[{i}].")  # validate now, with the file named
        key = _norm(row["name"])
        if key in by_name:
            rows[by_name[key]] = {**rows[by_name[key]], **row}
        else:
            by_name[key] = len(rows)
            rows.insert(0, row)  # user rows match before built-in patterns
            by_name = {_norm(r["name"]): j for j, r in enumerate(rows)}
    for name, price in (data.get("prices") or {}).items():
        key = _norm(str(name))
        if key not in by_name:
            raise InputError(f"no hardware named {name!r}", path=path, field=f"prices.{name}")
        price = _check_price(price, path, f"prices.{name}")
        rows[by_name[key]] = {**rows[by_name[key]], "usd_per_hour": price,
                              "price_source": f"user file {path.name}", "price_date": ""}
    return rows


# fp32 FLOPs per cycle per core: two FMA pipes x vector lanes x 2 (multiply + add).  AVX-512
# server cores (Skylake-SP and later, Zen 4/5): 2 x 16 x 2; AVX2 + FMA (Haswell and later,
# Zen 1-3): 2 x 8 x 2; AVX without FMA: 2 x 8 (add + multiply pipes); else SSE 2 x 4.
# Sources: Intel 64 and IA-32 Optimization Reference Manual (FMA throughput 2/cycle);
# AMD Zen 2/3 software optimization guides (two 256-bit FMA pipes).
CPU_FLOPS_PER_CYCLE = (("avx512f", 64), ("fma", 32), ("avx", 16))
CPU_DEFAULT_GHZ = 3.0  # when the clock cannot be read (assumption)


@functools.cache  # the machine does not change within a process
def _this_machine_cpu_peak() -> dict[str, Any]:
    """fp32 peak of this machine's CPU: cores x FLOPs/cycle x clock (from /proc/cpuinfo on Linux).

    bf16 is not faster on CPUs without AMX (it converts to fp32), and tunewise trains in fp32
    on CPU, so bf16_tflops = fp32_tflops.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    flags, mhz = _cpuinfo()
    per_cycle = next((n for flag, n in CPU_FLOPS_PER_CYCLE if flag in flags), 8)
    ghz = mhz / 1000 if mhz else CPU_DEFAULT_GHZ
    tflops = cores * per_cycle * ghz / 1000
    how = "/proc/cpuinfo" if mhz else f"assumed {CPU_DEFAULT_GHZ} GHz"
    return {"fp32_tflops": tflops, "bf16_tflops": tflops, "cores": cores,
            "tflops_source": f"derived: {cores} cores x {per_cycle} fp32 FLOP/cycle x {ghz:.2f} GHz ({how})"}


def _cpuinfo() -> tuple[set[str], float | None]:
    """The CPU's feature flags and clock (MHz; None where unknown) from `cpuinfo`."""
    info = cpuinfo()
    try:
        mhz = float(info["cpu MHz"])
    except (KeyError, ValueError):
        mhz = None
    return set(info.get("flags", "").split()), mhz


@functools.cache  # the machine does not change within a process
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux): "model name", "flags", "cpu MHz",
    ...; {} where the file does not exist.  One reader for the CPU peak and the CPU's name."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _this_machine_ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        raise InputError("cannot read this machine's RAM; pass --gpu-mem-gib", field="gpu_mem_gib") from None
