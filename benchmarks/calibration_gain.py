"""Calibration gain: the estimator's time and memory error on held-out runs, before and after
learning from the other runs on the same machine (advisor/calibration.py).

    .venv/bin/python benchmarks/calibration_gain.py                 # train a small grid first
    .venv/bin/python benchmarks/calibration_gain.py --records runs/ # reuse existing run records

Leave-one-out: each run is held out in turn; the calibration is fitted on the others, and
both the uncalibrated and the calibrated estimator predict the held-out run's
throughput (tokens/s; time error = the same ratio) and its measured peak (CPU: RSS growth
during training; CUDA: reserved), each re-estimated for exactly the settings and data
lengths that ran (calibration.Replay).  Errors are |predicted / measured - 1|.  The `cpu`
column is CPU seconds / (wall seconds x threads) of the held-out run: well below 100% the
machine was busy with other work and its wall-clock throughput is noise, not the model.

The default grid trains the bundled tiny model on CPU: LoRA and full fine-tuning at three
micro-batch sizes, STEPS steps each (about 3-6 minutes on 2 cores).  The runs are not added
to the local history (TUNEWISE_NO_HISTORY=1).  Writes benchmarks/results/calibration_gain.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TUNEWISE_NO_HISTORY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GRID = [("lora", 2), ("lora", 4), ("lora", 8), ("full", 2), ("full", 4), ("full", 8)]
STEPS = 40  # every run trains > 1 s, the calibration's minimum (advisor/calibration.py)
OUT_CSV = ROOT / "benchmarks" / "results" / "calibration_gain.csv"


def train_grid(out: Path, steps: int) -> Path:
    """Short runs of the tiny model on this CPU, each in a fresh process: the runners measure
    CPU memory as RSS growth, which an earlier run in the same process would hide."""
    from tunewise.assets import demo_data_path, tiny_model_path

    for method, batch in GRID:
        name = f"{method}-b{batch}"
        cmd = [sys.executable, "-m", "tunewise", "run", "--method", method, "--model", str(tiny_model_path()),
               "--data", str(demo_data_path("domain_500.jsonl")), "--max-steps", str(steps), "--batch-size",
               str(batch), "--seq-len", "128", "--logging-steps", "2", "--save-steps", "1000000",
               "--no-gradient-checkpointing", "--device", "cpu", "--out", str(out), "--name", name]
        if (out / name).exists():
            cmd.append("--overwrite")
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def leave_one_out(records: Path, gpu: str | None, clock: str = "wall") -> list[dict]:
    from advisor.calibration import calibrate, replay_entry
    from advisor.hardware import resolve_hardware
    from advisor.run_history import read_entries

    hardware = resolve_hardware(gpu)
    entries, warnings = read_entries([records], explicit=True)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if clock == "cpu":
        entries = [_cpu_clock(e) for e in entries]
    everyone = calibrate(entries, hardware)
    usable = {s.source for s in everyone.samples}
    rows = []
    for i, entry in enumerate(entries):
        others = calibrate(entries[:i] + entries[i + 1:], hardware)
        held = calibrate([entry], hardware)
        if not held.samples or not others.samples or held.samples[0].source not in usable:
            continue
        replay, run = replay_entry(entry, hardware), entry.run
        measured_tps = run.get("steady_tokens_per_s") or run["tokens_per_s"]
        measured_gib = held.samples[0].measured_gib
        rows.append({
            "run": Path(entry.source).parent.name, "method": run["method"], "batch": replay.settings.batch_size,
            "measured_tps": measured_tps, "before_tps": replay.tokens_per_s(), "after_tps": replay.tokens_per_s(others),
            "measured_gib": measured_gib, "before_gib": replay.memory_gib(),
            "after_gib": replay.memory_gib(others) if measured_gib is not None else None,
            "cpu_share": _cpu_share(run),
        })
    return rows


def _cpu_clock(entry):
    """The run as if it had its cores to itself: tokens over CPU seconds per thread."""
    from advisor.run_history import Entry

    run = entry.run
    cpu, threads = run.get("train_cpu_s"), run.get("threads") or 1
    rate = run["train_tokens"] / (cpu / threads) if cpu else run.get("tokens_per_s")
    return Entry(entry.source, {**run, "tokens_per_s": rate, "steady_tokens_per_s": None})


def _cpu_share(run: dict) -> float | None:
    """CPU seconds / (wall seconds x threads): 1.0 = the run had its cores to itself."""
    cpu, wall, threads = run.get("train_cpu_s"), run.get("train_time_s"), run.get("threads") or 1
    return round(cpu / (wall * threads), 3) if cpu and wall else None


def error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or not measured:
        return None
    return abs(predicted / measured - 1)


def print_table(rows: list[dict]) -> None:
    head = (f"{'held-out run':<12} {'method':<6} {'batch':>5}  {'tok/s':>8} {'before':>9} {'err':>7} {'after':>8} "
            f"{'err':>6}   {'GiB':>6} {'before':>7} {'err':>7} {'after':>7} {'err':>6}  {'cpu':>4}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['run']:<12} {r['method']:<6} {r['batch']:>5}  {r['measured_tps']:>8.1f} {r['before_tps']:>9.1f} "
              f"{_pct(error(r['before_tps'], r['measured_tps'])):>7} {r['after_tps']:>8.1f} "
              f"{_pct(error(r['after_tps'], r['measured_tps'])):>6}   {_g(r['measured_gib']):>6} {_g(r['before_gib']):>7} "
              f"{_pct(error(r['before_gib'], r['measured_gib'])):>7} {_g(r['after_gib']):>7} "
              f"{_pct(error(r['after_gib'], r['measured_gib'])):>6}  {_pct(r['cpu_share']):>4}")
    for what, key in (("time (tokens/s)", "tps"), ("memory", "gib")):
        before = [e for r in rows if (e := error(r[f"before_{key}"], r[f"measured_{key}"])) is not None]
        after = [e for r in rows if (e := error(r[f"after_{key}"], r[f"measured_{key}"])) is not None]
        if before and after:
            print(f"median |error| of {what}: before {statistics.median(before):.1%}, after "
                  f"{statistics.median(after):.1%} (max {max(before):.1%} -> {max(after):.1%}; {len(after)} held-out runs)")


def _csv(clock: str) -> Path:
    return OUT_CSV if clock == "wall" else OUT_CSV.with_name(f"calibration_gain_{clock}.csv")


def write_csv(rows: list[dict], clock: str) -> None:
    OUT_CSV.parent.mkdir(parents=True, exist_ok=True)
    with _csv(clock).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, help="A folder of run records to reuse (default: train the grid).")
    parser.add_argument("--gpu", help="Hardware the records ran on (catalog name; default: this CPU).")
    parser.add_argument("--steps", type=int, default=STEPS, help="Steps per grid run.")
    parser.add_argument("--keep", type=Path, help="Keep the grid's runs in this folder.")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="Throughput over wall seconds (what a user waits; default) or over CPU seconds per "
                             "thread (the run as if it had its cores to itself: separates model error from load).")
    args = parser.parse_args()
    if args.records is not None:
        rows = leave_one_out(args.records, args.gpu, args.clock)
    elif args.keep is not None:
        rows = leave_one_out(train_grid(args.keep, args.steps), args.gpu, args.clock)
    else:
        with tempfile.TemporaryDirectory(prefix="tunewise-calibration-gain-") as tmp:
            rows = leave_one_out(train_grid(Path(tmp), args.steps), args.gpu, args.clock)
    if not rows:
        sys.exit("no usable runs (need at least two completed runs on this hardware)")
    print_table(rows)
    write_csv(rows, args.clock)
    print(f"(rows in {_csv(args.clock).relative_to(ROOT)})")


if __name__ == "__main__":
    main()
