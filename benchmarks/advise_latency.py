"""Cold-start wall time of `tunewise advise` as a multiple of `python -c "import click"`.

    .venv/bin/python benchmarks/advise_latency.py [--runs 9]

Every run is a fresh process (cold interpreter, warm OS file cache), timed end to end
with time.perf_counter.  Commands are interleaved run by run so background load hits
them alike.  Reported: the median wall time of each command and the median of the
per-run ratios to `import click`.  Target (issue 2): advise <= 2.5x.
"""

from __future__ import annotations

import argparse
import json
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


def time_once(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
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
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, cmd in cases.items():
                times[name].append(time_once(cmd))
    base = times['python -c "import click"']
    print(f"{args.runs} runs each, interleaved; python {sys.version.split()[0]} ({sys.executable})\n")
    print(f"| {'command':<38} | median s | min s  | ratio to import click (median of runs) |")
    print(f"|{'-' * 40}|----------|--------|----------------------------------------|")
    for name, values in times.items():
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        print(f"| {name:<38} | {statistics.median(values):8.3f} | {min(values):6.3f} | {ratio:38.2f} |")
    key = "advise --data 500 rows"
    ratio = statistics.median(v / b for v, b in zip(times[key], base, strict=True))
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"\n`{key}`: {ratio:.2f}x import click -- {verdict} the <= {TARGET}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
