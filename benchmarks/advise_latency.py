"""Cold-start wall time of `tunewise advise` as a multiple of `python -c "import click"`.

    .venv/bin/python benchmarks/advise_latency.py [--runs 9]

Every run is a fresh process (cold interpreter, warm OS file cache), timed end to end
with time.perf_counter; the child's CPU time (user + system, from getrusage) is shown
too, because on a shared, loaded machine wall time also counts waiting for a core.
Commands are interleaved run by run so background load hits them alike.  Reported: the
median of each and the median of the per-run ratios to `import click`.
Target (issue 2): `advise` wall time <= 2.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 2.5
MODEL = "meta-llama/Llama-2-7b-hf"


def tunewise_cmd() -> list[str]:
    """The installed console script (what a user runs), else `python -m tunewise`."""
    script = Path(sys.executable).with_name("tunewise")
    if script.exists():
        return [str(script)]
    found = shutil.which("tunewise")
    return [found] if found else [sys.executable, "-m", "tunewise"]


def write_data(folder: Path, n: int) -> Path:
    path = folder / f"train_{n}.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            msgs = [{"role": "user", "content": f"Where is order {i}? It was due on day {i % 28 + 1}."},
                    {"role": "assistant", "content": f"Order {i} ships from warehouse {i % 7}; "
                     "tracking follows by email within one business day."}]
            fh.write(json.dumps({"messages": msgs}) + "\n")
    return path


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_env() -> dict[str, str]:
    """The environment for the timed processes: PYTHONDONTWRITEBYTECODE is dropped, so
    tunewise's modules get their .pyc files on the warm-up run, as click's already have
    from `pip install` (otherwise every run would recompile tunewise and not click)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


ENV: dict[str, str] = {}


def time_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one fresh process."""
    cpu0, start = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    elapsed, cpu = time.perf_counter() - start, _child_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    ENV.clear()
    ENV.update(child_env())
    tw = tunewise_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "tunewise --help": [*tw, "--help"],
            "advise --examples 500 (no data)": [*tw, "advise", "--model", MODEL, "--gpu", "rtx-4090",
                                                "--examples", "500", "--tokens-per-example", "400"],
            "advise --data 500 rows": [*tw, "advise", "--model", MODEL, "--gpu", "rtx-4090",
                                       "--data", str(write_data(folder, 500))],
            "advise --data 500 rows --json --out": [*tw, "advise", "--model", MODEL, "--gpu", "rtx-4090",
                                                    "--data", str(folder / "train_500.jsonl"), "--json",
                                                    "--out", str(folder / "plan.yaml")],
            "advise --data 5,000 rows": [*tw, "advise", "--model", MODEL, "--gpu", "rtx-4090",
                                         "--data", str(write_data(folder, 5000))],
        }
        for cmd in cases.values():  # warm the OS file cache and byte-code caches once
            time_once(cmd)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, cmd in cases.items():
                times[name].append(time_once(cmd))
    base = times['python -c "import click"']
    print(f"{args.runs} runs each, interleaved; python {sys.version.split()[0]}; bytecode cache on; "
          f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| {'command':<38} | wall median s | wall ratio | CPU median s | CPU ratio |")
    print(f"|{'-' * 40}|---------------|------------|--------------|-----------|")
    ratios = {}
    for name, runs in times.items():
        wall = statistics.median(w / b[0] for (w, _), b in zip(runs, base, strict=True))
        cpu = statistics.median(c / b[1] for (_, c), b in zip(runs, base, strict=True))
        ratios[name] = (wall, cpu)
        print(f"| {name:<38} | {statistics.median(r[0] for r in runs):13.3f} | {wall:10.2f} | "
              f"{statistics.median(r[1] for r in runs):12.3f} | {cpu:9.2f} |")
    key = "advise --data 500 rows"
    wall, cpu = ratios[key]
    print(f"\n`{key}`: wall {wall:.2f}x, CPU {cpu:.2f}x `import click` "
          f"-- {'meets' if wall <= TARGET else 'MISSES'} the <= {TARGET}x wall-time target"
          + ("" if wall <= TARGET else f" (CPU time {'meets' if cpu <= TARGET else 'misses'} it: "
             "on a loaded machine wall time includes waiting for a core)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
