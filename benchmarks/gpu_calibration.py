"""Real CUDA peaks and throughput over a grid, written to a CSV; estimate vs measured from a CSV.

    .venv/bin/python benchmarks/gpu_calibration.py                 # on a CUDA machine, < 8 min
    .venv/bin/python benchmarks/gpu_calibration.py --tiny --out /tmp/tiny.csv   # CPU logic check
    .venv/bin/python benchmarks/gpu_calibration.py --analyze benchmarks/results/gpu_calibration_<gpu>.csv

Grid: random-init architectures from the model catalog (Qwen2.5-0.5B, Llama-3.2-1B/3B,
Llama-3.1-8B), methods full, lora, qlora, dpo (LoRA DPO, the runners' default), sequence
lengths 512-4096 with gradient checkpointing on and off.  Each model/method is built once
(runners.trace_model with real tensors: the runners' own loading recipe -- fp32 masters +
bf16 autocast for full, bf16 base for adapters, NF4 + double quantisation for QLoRA) and
trained with runners.trace_step.run_step, the same step the fake-tensor trace follows
(trl 1.16's fused LM head, DPO reference forward, fused AdamW).  Per setting: one warm-up
step (creates the optimizer states), then the peak counters are reset and `--steps` timed
steps run; `max_memory_allocated`/`max_memory_reserved` and tokens/s are recorded.

Budget: settings run cheapest first; a setting the analytic estimate says will not fit is
recorded as "skipped: estimate > memory", one that would overrun the time budget as
"skipped: time budget"; an out-of-memory error is caught and recorded as "OOM".
The analysis mode prints each row against the current advisor estimate.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("model", "params", "method", "precision", "optimizer", "batch_size", "seq_len",
           "gradient_checkpointing", "lora_rank", "lora_targets", "allocated_gib", "reserved_gib",
           "tokens_per_s", "status", "torch", "transformers", "peft", "bitsandbytes", "gpu_name",
           "gpu_memory_gib")
MODELS = ("Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.1-8B")
METHODS = ("lora", "qlora", "dpo", "full")
SETTINGS = ((1, 512, False), (1, 2048, True), (1, 4096, True), (1, 4096, False))  # batch, seq, gc
TINY_SETTINGS = ((2, 64, False), (2, 128, True))
GIB = 1024**3


def tiny_model() -> str:
    from tunewise.assets import tiny_model_path

    return str(tiny_model_path())


def measure(model: str, method: str, grid, *, device: str, steps: int, deadline: float, log) -> list[dict]:
    """Build `model` once for `method`, then measure every (batch, seq, gc) of `grid`."""
    import torch

    from runners.trace import _build_meta, _check_method, _materialize
    from runners.trace_model import load_config, prepare_bitsandbytes, recipe
    from runners.trace_step import build_optimizer, prepare_for_training
    from tunewise.settings import TrainSettings

    config = load_config(model)
    rows = []
    first = TrainSettings(batch_size=grid[0][0], seq_len=grid[0][1])
    meth, base = _check_method(method, first)
    plan = recipe(first, base)
    try:
        policy, reference = _build_meta(config, meth, plan)
        prepare_bitsandbytes()
        _materialize(policy, reference, _Null(), adapters=plan.lora is not None, real=True, device=device)
        prepare_for_training(policy, reference, meth, first)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        optimizer = build_optimizer(trainable, first)
    except torch.OutOfMemoryError:
        _free(device)
        return [_row(model, method, s, status="OOM (loading)") for s in grid]
    for batch, seq, gc in grid:
        s = first.replace(batch_size=batch, seq_len=seq, gradient_checkpointing=gc)
        if time.monotonic() > deadline:
            rows.append(_row(model, method, s, status="skipped: time budget"))
            continue
        built = Built(policy, reference, optimizer, meth, plan)
        rows.append(_measure_one(built, s, model=model, method=method, device=device, steps=steps))
        log(f"  {model} {method} b{batch} s{seq} gc={gc}: {rows[-1]['status']} "
            f"{rows[-1]['allocated_gib']} GiB {rows[-1]['tokens_per_s']} tok/s")
    del policy, reference, optimizer
    _free(device)
    return rows


@dataclass
class Built:
    """A model ready to train: policy, DPO reference copy (or None), optimizer, recipe."""

    policy: Any
    reference: Any
    optimizer: Any
    method: Any
    plan: Any

    def step(self, s, device: str) -> None:
        from runners.trace_step import run_step

        run_step(self.policy, self.reference, self.optimizer, self.method, s, _Null(),
                 autocast=self.plan.autocast, device=device)


def _measure_one(built: Built, s, *, model, method, device, steps) -> dict:
    import torch

    _set_checkpointing(built.policy, s.gradient_checkpointing)
    optimizer = built.optimizer
    try:
        built.step(s, device)  # warm-up: creates the optimizer states
        meter = _Meter(device)
        started = time.perf_counter()
        for _ in range(steps):
            built.step(s, device)
        allocated, reserved = meter.stop()
        seconds = time.perf_counter() - started
    except torch.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        _free(device)
        return _row(model, method, s, status="OOM")
    rows_per_step = s.batch_size * (2 if method == "dpo" else 1)
    return _row(model, method, s, status="ok", allocated=allocated, reserved=reserved,
                tokens_per_s=rows_per_step * s.seq_len * steps / seconds)


def _set_checkpointing(policy, on: bool) -> None:
    if on:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(policy, "enable_input_require_grads"):
            policy.enable_input_require_grads()
    else:
        policy.gradient_checkpointing_disable()


class _Null:
    """The tracker interface run_step expects, doing nothing (CUDA stats measure here)."""

    def category(self, *args, **kwargs):
        from contextlib import nullcontext

        return nullcontext()

    def register(self, *args) -> None:
        pass

    def set_position(self, *args) -> None:
        pass


class _Meter:
    """CUDA: max allocated/reserved since reset.  CPU (--tiny): live tensor bytes and RSS delta."""

    def __init__(self, device: str) -> None:
        import torch

        self.device = device
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            from runners._memory import PeakMemoryMeter

            self.rss = PeakMemoryMeter("cpu")
            self.rss.start()

    def stop(self) -> tuple[float, float]:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / GIB, torch.cuda.max_memory_reserved() / GIB
        peak = self.rss.stop()
        return peak.rss_delta_gib, peak.rss_peak_gib


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _row(model, method, s, *, status, allocated=None, reserved=None, tokens_per_s=None) -> dict:
    from advisor.models import resolve_model

    return {"model": model, "params": resolve_model(model).params, "method": method,
            "precision": s.precision, "optimizer": s.optimizer, "batch_size": s.batch_size,
            "seq_len": s.seq_len, "gradient_checkpointing": s.gradient_checkpointing,
            "lora_rank": s.lora_rank if method != "full" else "", "lora_targets": s.lora_targets if method != "full" else "",
            "allocated_gib": _r(allocated), "reserved_gib": _r(reserved),
            "tokens_per_s": _r(tokens_per_s, 1), "status": status, **_environment()}


def _r(value, digits=4):
    return "" if value is None else round(value, digits)


def _environment() -> dict:
    import importlib.metadata as md

    import torch

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    return {**{p: md.version(p) for p in ("torch", "transformers", "peft", "bitsandbytes")},
            "gpu_name": props.name if cuda else "cpu",
            "gpu_memory_gib": round(props.total_memory / GIB, 1) if cuda else ""}


# ----------------------------------------------------------------------------- the grid


def hardware_for(gpu_name: str, memory_gib):
    """The catalog device for a CUDA device name (or a custom one of that memory)."""
    from advisor.hardware import list_hardware, resolve_hardware

    if gpu_name == "cpu":
        return resolve_hardware("cpu")
    name = gpu_name.lower().replace("nvidia", "").replace("geforce", "").strip()
    for hw in list_hardware():
        key = hw.name.split("-")[0] if hw.name.startswith(("h200", "l40s", "b200", "t4", "l4")) else hw.name
        if key in name.replace(" ", "-") and abs(hw.memory_gib - float(memory_gib or hw.memory_gib)) < 8:
            return hw
    return resolve_hardware(name.replace(" ", "-") or "gpu", memory_gib=float(memory_gib))


def estimate_for(row: dict):
    """The advisor's estimate for one CSV row (DPO = LoRA DPO, as measured)."""
    from advisor.estimate import estimate
    from advisor.memory import MemoryKnobs
    from advisor.models import resolve_model
    from tunewise.methods import Method
    from tunewise.settings import TrainSettings

    s = TrainSettings(batch_size=int(row["batch_size"]), seq_len=int(row["seq_len"]),
                      gradient_checkpointing=str(row["gradient_checkpointing"]) == "True")
    hw = hardware_for(row["gpu_name"], row.get("gpu_memory_gib"))
    return estimate(resolve_model(row["model"]), Method(row["method"]), hw, s,
                    knobs=MemoryKnobs(preference_adapter=True))


def run_grid(models, grid, *, device: str, steps: int, budget_s: float, log) -> list[dict]:
    """Every model x method x setting, cheapest first, within `budget_s` seconds."""
    from tunewise.settings import TrainSettings

    deadline = time.monotonic() + budget_s
    rows = []
    for model in models:
        for method in METHODS:
            env = _environment()
            fitting = []
            for batch, seq, gc in grid:
                s = TrainSettings(batch_size=batch, seq_len=seq, gradient_checkpointing=gc)
                est = estimate_for({"model": model, "method": method, "batch_size": batch, "seq_len": seq,
                                    "gradient_checkpointing": gc, **env})
                if device == "cuda" and est.memory.total > 1.1 * est.hardware.memory_gib:
                    rows.append(_row(model, method, s, status="skipped: estimate > memory"))
                else:
                    fitting.append((batch, seq, gc))
            if fitting and time.monotonic() < deadline:
                rows += measure(model, method, fitting, device=device, steps=steps, deadline=deadline, log=log)
            elif fitting:
                rows += [_row(model, method, TrainSettings(batch_size=b, seq_len=q, gradient_checkpointing=g),
                              status="skipped: time budget") for b, q, g in fitting]
    return rows


def write_csv(rows: list[dict], out: Path) -> Path:
    from tunewise.atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(out, buf.getvalue())


# ----------------------------------------------------------------------------- analysis


def analyze(path: Path) -> str:
    """Each measured row vs the current advisor estimate; median error per method."""
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise SystemExit(f"{path}: missing columns {', '.join(missing)}")
    lines = [f"Table 4 - real {'CUDA' if rows and rows[0]['gpu_name'] != 'cpu' else 'CPU (tiny)'} "
             f"measurements ({path.name}): estimate vs measured", "",
             f"{'model':<22} {'method':<6} {'seq':>5} {'gc':>3} {'alloc':>7} {'est.alloc':>9} {'err':>7} "
             f"{'reserved':>8} {'est.total':>9} {'err':>7} {'tok/s':>8}  status"]
    errors: dict[str, list[float]] = {}
    rows_of: dict[str, int] = {}
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['model'].split('/')[-1][:22]:<22} {r['method']:<6} {r['seq_len']:>5} "
                         f"{_gc(r):>3} {'':>7} {'':>9} {'':>7} {'':>8} {'':>9} {'':>7} {'':>8}  {r['status']}")
            continue
        est = estimate_for(r)
        alloc, reserved = float(r["allocated_gib"]), float(r["reserved_gib"])
        # A peak below the measurement's resolution (CPU RSS of a tiny model can read 0) has
        # no relative error: shown, not scored.
        e_alloc = (est.memory.allocated - alloc) / alloc if alloc > 0 else None
        e_total = (est.memory.total - reserved) / reserved if reserved > 0 else None
        scored = errors.setdefault(r["method"], [])
        if e_alloc is not None:
            scored.append(e_alloc)
        rows_of[r["method"]] = rows_of.get(r["method"], 0) + 1
        lines.append(f"{r['model'].split('/')[-1][:22]:<22} {r['method']:<6} {r['seq_len']:>5} {_gc(r):>3} "
                     f"{alloc:>7.2f} {est.memory.allocated:>9.2f} {_pct(e_alloc):>7} {reserved:>8.2f} "
                     f"{est.memory.total:>9.2f} {_pct(e_total):>7} {float(r['tokens_per_s']):>8.0f}  "
                     + ("ok" if e_alloc is not None else "ok (peak below resolution: not scored)"))
    lines += ["", "median |error| of the estimated allocated memory, per method (target <= 10%):"]
    for method, errs in errors.items():
        unscored = f" ({rows_of[method] - len(errs)} not scored)" if len(errs) < rows_of[method] else ""
        summary = (f"median {statistics.median(abs(e) for e in errs):.1%}  mean {statistics.mean(errs):+.1%}"
                   if errs else "median n/a")
        lines.append(f"  {method:<6} {rows_of[method]:>3} rows  {summary}{unscored}")
    return "\n".join(lines)


def _pct(error: float | None) -> str:
    return "n/a" if error is None else f"{error:+.1%}"


def _gc(row) -> str:
    return "on" if str(row["gradient_checkpointing"]) == "True" else "off"


def latest_csv() -> Path | None:
    found = sorted(p for p in RESULTS.glob("gpu_calibration_*.csv") if "tiny" not in p.name)
    return found[-1] if found else None


def table() -> str:
    """For benchmarks/estimate_accuracy.py: the newest committed CUDA CSV, if any."""
    path = latest_csv()
    if path is None:
        return ("Table 4 - real CUDA: no CSV in benchmarks/results yet "
                "(run benchmarks/gpu_calibration.py on a CUDA machine)")
    return analyze(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU: checks the logic")
    parser.add_argument("--analyze", type=Path, nargs="?", const=True, help="compare a CSV with the estimate")
    parser.add_argument("--out", type=Path, help="CSV path (default benchmarks/results/gpu_calibration_<gpu>_<date>.csv)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting settings after this")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    args = parser.parse_args(argv)
    if args.analyze is not None:
        path = latest_csv() if args.analyze is True else args.analyze
        print(analyze(path) if path else table())
        return 0
    import torch

    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if args.tiny:
        rows = run_grid([tiny_model()], TINY_SETTINGS, device="cpu", steps=1, budget_s=args.budget_s, log=log)
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --tiny for the CPU logic check, or --analyze a CSV")
    else:
        rows = run_grid(list(MODELS), SETTINGS, device="cuda", steps=args.steps, budget_s=args.budget_s, log=log)
    slug = "tiny_cpu" if args.tiny else rows[0]["gpu_name"].lower().replace(" ", "-")
    out = write_csv(rows, args.out or RESULTS / f"gpu_calibration_{slug}_{date.today():%Y%m%d}.csv")
    print(f"wrote {out}")
    print(analyze(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
