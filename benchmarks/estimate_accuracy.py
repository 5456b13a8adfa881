"""How right is the estimator?  Prints one accuracy table per reference.

    .venv/bin/python benchmarks/estimate_accuracy.py            # every table
    .venv/bin/python benchmarks/estimate_accuracy.py --table published --rows

Tables (issue 8): 1 `published` — published measured peaks (benchmarks/data/
calibration_points.csv, see benchmarks/accuracy_published.py for how each row is read).
Later tables (CPU measurements, fake-tensor traces, CUDA CSV) register a function in
TABLES that returns its printed text; each lives in its own module under benchmarks/.

Statistics: absolute percentage error |estimate - measured| / measured, median and 90th
percentile (nearest-rank) per method; the fit verdict is right when an OOM row is predicted
not to fit and a measured row on a GPU of known size is predicted to fit.
Targets: median <= 10%, p90 <= 20% (issue 8), >= 95% correct fit verdicts.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import accuracy_published  # noqa: E402

TARGET_MEDIAN, TARGET_P90, TARGET_FITS = 0.10, 0.20, 0.95


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def error_table(groups: dict[str, list[float]]) -> list[str]:
    lines = [f"{'method':<10} {'rows':>4} {'median |err|':>13} {'p90 |err|':>10} {'mean err':>9}"]
    for name, errs in groups.items():
        if not errs:
            continue
        absolute = [abs(e) for e in errs]
        lines.append(f"{name:<10} {len(errs):>4} {statistics.median(absolute):>12.1%} {p90(absolute):>10.1%} "
                     f"{statistics.mean(errs):>+9.1%}")
    return lines


def published_table(show_rows: bool = False) -> str:
    """Table 1: estimate vs every measured row of the published calibration points, over all
    scored rows and over the rows their own source or arithmetic does not contradict."""
    rows = accuracy_published.scenarios()
    scored = [r for r in rows if r.error is not None]
    consistent = [r for r in scored if r.contradicted is None]
    lines = ["Table 1 - published measured peaks (benchmarks/data/calibration_points.csv)", ""]
    if show_rows:
        lines += _row_lines(rows) + [""]
    groups: dict[str, list[float]] = {}
    for r in scored:
        groups.setdefault(str(r.method), []).append(r.error)
    groups["all"] = [r.error for r in scored]
    groups["fixed-seq"] = [r.error for r in scored if not r.variable_seq]
    groups["consistent"] = [r.error for r in consistent]
    lines += error_table(groups)
    verdicts = [r for r in rows if r.fits is not None and r.skip is None]
    right = [r for r in verdicts if r.fits == (not r.oom)]
    ooms = [r for r in verdicts if r.oom]
    lines += ["", f"fit verdicts right: {len(right)}/{len(verdicts)} = {len(right) / max(1, len(verdicts)):.0%} "
              f"(OOM rows right: {sum(1 for r in ooms if not r.fits)}/{len(ooms)}; every other row ran on its GPU)"]
    lines += ["", f"contradicted {len(scored) - len(consistent)} of {len(scored)} scored rows "
              "(in 'all', not in 'consistent'):"]
    lines += [f"  #{r.index} {r.label}: {r.contradicted}" for r in scored if r.contradicted]
    skipped = [r for r in rows if r.skip]
    lines += ["", f"skipped {len(skipped)} of {len(rows)} rows:"]
    reasons: dict[str, int] = {}
    for r in skipped:
        reasons[r.skip] = reasons.get(r.skip, 0) + 1
    lines += [f"  {n:>2} x {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    fits_ok = len(right) >= TARGET_FITS * len(verdicts)
    lines += [""] + [f"targets (median <= {TARGET_MEDIAN:.0%}, p90 <= {TARGET_P90:.0%}, fits >= {TARGET_FITS:.0%}) "
                     f"over {name} rows: {_verdict(groups[name], fits_ok)}" for name in ("all", "consistent")]
    return "\n".join(lines)


def _verdict(errors: list[float], fits_ok: bool) -> str:
    absolute = [abs(e) for e in errors]
    median, high = statistics.median(absolute), p90(absolute)
    ok = median <= TARGET_MEDIAN and high <= TARGET_P90 and fits_ok
    return f"{'met' if ok else 'NOT met'} (median {median:.1%}, p90 {high:.1%})"


def _row_lines(rows) -> list[str]:
    out = [f"{'#':>3} {'row':<38} {'metric':<9} {'measured':>8} {'estimate':>8} {'err':>7} {'fits':>5}  note"]
    for r in rows:
        meas = "-" if r.measured_gib is None else f"{r.measured_gib:.1f}"
        est = "-" if r.estimate_gib is None else f"{r.estimate_gib:.1f}"
        err = "-" if r.error is None else f"{r.error:+.0%}"
        fits = "-" if r.fits is None else ("yes" if r.fits else "no")
        note = r.skip or ("OOM row" if r.oom else ("var" if r.variable_seq else ""))
        note = f"{note} contradicted".strip() if r.contradicted else note
        out.append(f"{r.index:>3} {r.label[:38]:<38} {r.metric:<9} {meas:>8} {est:>8} {err:>7} {fits:>5}  {note}")
    return out


def _lazy(module: str) -> Callable[..., str]:
    """A table whose module (and its torch import) loads only when the table is printed."""
    def table(**kwargs) -> str:
        import importlib

        return importlib.import_module(f"benchmarks.{module}").table(**kwargs)
    return table


TABLES: dict[str, Callable[..., str]] = {
    "published": published_table,
    "cpu": _lazy("estimate_cpu"),  # table 2: real CPU steps (runs the grid: minutes)
    "trace": _lazy("estimate_trace"),  # table 3: stored fake-tensor traces (seconds)
    "cuda": _lazy("gpu_calibration"),  # table 4: the newest committed CUDA CSV, if any
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(TABLES), action="append", help="table(s) to print (default: all)")
    parser.add_argument("--rows", action="store_true", help="also print every row of the published table")
    args = parser.parse_args(argv)
    for name in args.table or list(TABLES):
        kwargs = {"show_rows": args.rows} if name == "published" else {}
        print(TABLES[name](**kwargs))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
