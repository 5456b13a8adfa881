"""Table 3: the analytic memory estimate vs fake-tensor traces of real architectures (7B-70B).

    .venv/bin/python benchmarks/estimate_trace.py               # compare with the stored traces
    .venv/bin/python benchmarks/estimate_trace.py --retrace     # trace the grid again (minutes)
    .venv/bin/python benchmarks/estimate_trace.py --retrace --quick --validate

Each grid point is one steady-state training step traced by runners.trace (trl's step,
runners.translate's model loading, nothing allocated), extrapolated from 4 and 5 decoder
layers to the full depth (exact for identical layers; `--validate` re-traces Llama-2-7B at
full depth to show it).  The traces are stored in benchmarks/results/trace_grid.csv, so the
comparison re-runs in seconds against the current advisor: change advisor/memory.py, run
this again.

Error = (analytic - traced) / traced.  Totals: analytic *allocated* memory (everything but
`overhead`) vs the traced peak of live tensor bytes.  Parts: the analytic part vs that
category's own traced peak.  Target (issue 8): median |total error| <= 5% per method.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "trace_grid.csv"
MODELS = ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1",
          "Qwen/Qwen2.5-14B", "meta-llama/Llama-2-70b-hf")
METHODS = ("full", "lora", "qlora", "dpo")  # dpo = LoRA DPO (the runners' default)
SETTINGS = ((4, 2048, True), (1, 512, False), (2, 4096, True))  # batch, seq, checkpointing
QUICK_MODELS, QUICK_SETTINGS = MODELS[:2], SETTINGS[:2]
PARTS = ("weights", "adapter", "gradients", "optimizer", "activations")
FIELDS = ("model", "method", "precision", "batch_size", "seq_len", "gradient_checkpointing", "traced_peak",
          *(f"traced_{p}" for p in PARTS), "peak_phase", "trainable_params", "seconds", "versions")
TARGET_MEDIAN = 0.05
# Rows stored before the `precision` column were traced with the runners' former "bf16"
# recipe: fp32 masters (full) / fp32 LoRA adapters with bf16 autocast -- today's "amp".
TRACED_BEFORE_PRECISION_COLUMN = "amp"
GIB = 1024**3
# Why a component is off, as found by tracing (printed only while that component is off).
CAUSES = {
    ("full", "weights"): "runners load full fine-tuning in fp32 (runners.translate._load_kwargs: "
                         "fp32 masters + bf16 autocast): 4 B/param, not bf16's 2",
    ("full", "gradients"): "fp32 gradients of fp32 masters: 4 B/param",
    ("full", "optimizer"): "fused AdamW keeps m and v in the parameter dtype (fp32): 8 B/param + 4 B "
                           "per tensor (step)",
    ("full", "activations"): "own peak is the forward's bf16 autocast copies of every weight "
                             "(~2 B/param) plus trl's fp32 LM-head gradient; the overall peak is the "
                             "end of backward, where activations are small",
    ("lora", "activations"): "trl 1.16's fused LM head never holds (b, s, vocab) logits "
                             "(MemoryKnobs.loss='fused' describes it); without checkpointing the "
                             "LoRA dropout outputs+masks and fp32 norm copies are under-counted "
                             "(traced Llama-2-7B, r16 all-linear, no checkpointing: 387,588 B per "
                             "token per layer with lora_dropout 0.05, 246,788 B without)",
    ("qlora", "adapter"): "trl casts QLoRA adapters to bf16 (2 B/param, not fp32's 4)",
    ("qlora", "gradients"): "bf16 adapter gradients (trl casts QLoRA adapters to bf16)",
    ("qlora", "optimizer"): "Adam states in the adapters' bf16 (4 B/param, not 8)",
    ("qlora", "activations"): "as LoRA: fused LM head (no full logits) and LoRA dropout outputs+masks; "
                              "bitsandbytes 0.50's MatMul4Bit keeps only the packed weight "
                              "(ctx.tensors = (None, B)), older releases also kept the input",
    ("dpo", "activations"): "trl 1.16's fused LM head: no (2b, s, vocab) logits for the policy or "
                            "the reference forward (MemoryKnobs.loss='fused'); trl disables "
                            "dropout in DPO",
}


def trace_grid(models, settings_grid, log=print, methods=METHODS, precision: str = "bf16") -> list[dict]:
    """Trace every (model, method, batch, seq, checkpointing) point; rows for the CSV."""
    from runners.trace import trace_extrapolated
    from runners.trace_compare import traced_parts
    from tunewise.settings import TrainSettings

    rows = []
    for model in models:
        for method in methods:
            for batch, seq, gc in settings_grid:
                s = TrainSettings(batch_size=batch, seq_len=seq, gradient_checkpointing=gc, precision=precision)
                result = trace_extrapolated(model, method, s)
                parts = traced_parts(result)
                rows.append({"model": model, "method": method, "precision": precision,
                             "batch_size": batch, "seq_len": seq,
                             "gradient_checkpointing": gc, "traced_peak": result.peak_bytes / GIB,
                             **{f"traced_{p}": parts[p] for p in PARTS},
                             "peak_phase": result.peak_phase, "trainable_params": result.trainable_params,
                             "seconds": result.seconds, "versions": _versions()})
                log(f"  traced {model} {method} b{batch} s{seq} gc={gc}: "
                    f"{result.peak_bytes / GIB:.2f} GiB ({result.seconds:.0f} s)")
    return rows


def validate(log=print) -> list[str]:
    """Extrapolated (4, 5 layers) vs full-depth traces of Llama-2-7B, one setting per method."""
    from runners.trace import trace, trace_extrapolated
    from tunewise.settings import TrainSettings

    lines = ["Depth extrapolation check: Llama-2-7B (32 layers), b4 s2048 checkpointing on", "",
             f"{'method':<8} {'full depth GiB':>15} {'extrapolated GiB':>17} {'difference bytes':>17}"]
    s = TrainSettings(batch_size=4, seq_len=2048, gradient_checkpointing=True)
    for method in METHODS:
        full = trace(MODELS[0], method, s)
        fast = trace_extrapolated(MODELS[0], method, s)
        lines.append(f"{method:<8} {full.peak_bytes / GIB:>15.3f} {fast.peak_bytes / GIB:>17.3f} "
                     f"{fast.peak_bytes - full.peak_bytes:>17,}")
        log(f"  validated {method}")
    return lines


def analytic(row: dict) -> dict[str, float]:
    """The advisor's memory breakdown (GiB) for a stored grid point."""
    from advisor.estimate import estimate
    from advisor.hardware import resolve_hardware
    from advisor.memory import MemoryKnobs
    from advisor.models import resolve_model
    from tunewise.methods import Method
    from tunewise.settings import TrainSettings

    s = TrainSettings(batch_size=int(row["batch_size"]), seq_len=int(row["seq_len"]),
                      gradient_checkpointing=str(row["gradient_checkpointing"]) == "True",
                      precision=row.get("precision") or TRACED_BEFORE_PRECISION_COLUMN)
    # The trace runs PyTorch's CPU kernels on fake tensors (composite dropout and loss tiles)
    # and the fused AdamW the runners use on CUDA.
    est = estimate(resolve_model(row["model"]), Method(row["method"]), resolve_hardware("h200"), s,
                   knobs=MemoryKnobs(preference_adapter=True, fused_kernels=False, fused_optimizer=True))
    return est.memory_gib


def compare_rows(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        mem = analytic(row)
        errors = {p: _err(mem[p], float(row[f"traced_{p}"])) for p in PARTS}
        allocated = sum(mem[p] for p in PARTS)
        out.append({**row, "analytic": mem, "errors": errors,
                    "total_error": _err(allocated, float(row["traced_peak"])),
                    "analytic_allocated": allocated})
    return out


def _err(analytic_gib: float, traced_gib: float) -> float | None:
    return None if traced_gib < 0.005 else (analytic_gib - traced_gib) / traced_gib


def table(show_rows: bool = True) -> str:
    """Table 3 text from the stored traces (benchmarks/results/trace_grid.csv)."""
    if not RESULTS.exists():
        return f"Table 3 - no stored traces: run benchmarks/estimate_trace.py --retrace ({RESULTS.name})"
    with RESULTS.open(newline="") as fh:
        rows = compare_rows(list(csv.DictReader(fh)))
    lines = ["Table 3 - analytic estimate vs fake-tensor traces (benchmarks/results/trace_grid.csv)", ""]
    if show_rows:
        lines += _row_lines(rows) + [""]
    lines += _summary_lines(rows) + [""] + findings(rows)
    return "\n".join(lines)


def _row_lines(rows) -> list[str]:
    out = [f"{'model':<26} {'method':<6} {'b':>2} {'seq':>5} {'gc':>3} {'traced':>8} {'analytic':>8} "
           f"{'err':>7}  {'weights':>7} {'grads':>7} {'optim':>7} {'activ':>7}  peak at"]
    for r in rows:
        e = r["errors"]
        out.append(f"{r['model'].split('/')[-1][:26]:<26} {r['method']:<6} {r['batch_size']:>2} "
                   f"{r['seq_len']:>5} {'on' if r['gradient_checkpointing'] == 'True' else 'off':>3} "
                   f"{float(r['traced_peak']):>8.2f} {r['analytic_allocated']:>8.2f} {r['total_error']:>+7.1%}  "
                   + " ".join(f"{_pct(e[p]):>7}" for p in ("weights", "gradients", "optimizer", "activations"))
                   + f"  {r['peak_phase']}")
    return out


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.0%}"


def _summary_lines(rows) -> list[str]:
    from benchmarks.estimate_accuracy import error_table

    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r["method"], []).append(r["total_error"])
    groups["all"] = [r["total_error"] for r in rows]
    ok = all(statistics.median(abs(e) for e in v) <= TARGET_MEDIAN for v in groups.values())
    return (["Total (analytic allocated vs traced peak), per method:"] + error_table(groups)
            + [f"target median |err| <= {TARGET_MEDIAN:.0%} per method: {'met' if ok else 'NOT met'}"])


def findings(rows) -> list[str]:
    """Which analytic component is off, by how much, per method (median signed error)."""
    lines = ["Per-component median signed error (analytic vs traced own peak), per method:",
             f"{'method':<6} " + " ".join(f"{p:>12}" for p in PARTS)]
    off = []
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for part in PARTS:
            errs = [r["errors"][part] for r in mine if r["errors"][part] is not None]
            med = statistics.median(errs) if errs else None
            cells.append("-" if med is None else f"{med:+.1%}")
            if med is not None and abs(med) > TARGET_MEDIAN:
                gib = statistics.median(r["analytic"][part] - float(r[f"traced_{part}"]) for r in mine)
                off.append(f"  - {method} {part}: analytic {med:+.1%} vs trace (median {gib:+.2f} GiB)")
                if (method, part) in CAUSES:
                    off.append(f"      why: {CAUSES[(method, part)]}")
        lines.append(f"{method:<6} " + " ".join(f"{c:>12}" for c in cells))
    return lines + (["Components off by more than 5%:"] + off if off else ["No component off by more than 5%."])


def _versions() -> str:
    import importlib.metadata as md

    return " ".join(f"{p}={md.version(p)}" for p in ("torch", "transformers", "peft", "trl", "bitsandbytes"))


def write_rows(rows: list[dict]) -> None:
    from tunewise.atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(RESULTS, buf.getvalue())


def _kept_rows(methods: tuple[str, ...], precision: str) -> list[dict]:
    """Stored rows a partial retrace does not replace."""
    if not RESULTS.exists():
        return []
    with RESULTS.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["precision"] = row.get("precision") or TRACED_BEFORE_PRECISION_COLUMN
    return [r for r in rows if not (r["method"] in methods and r["precision"] == precision)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrace", action="store_true", help="trace the grid again and store it")
    parser.add_argument("--quick", action="store_true", help="with --retrace: 2 models x 2 settings")
    parser.add_argument("--validate", action="store_true", help="also check the depth extrapolation")
    parser.add_argument("--no-rows", action="store_true", help="only the summary")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="with --retrace: these methods only (their stored rows at --precision are replaced)")
    parser.add_argument("--precision", default="bf16", help="with --retrace: the precision to trace")
    args = parser.parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if args.retrace:
        models, grid = (QUICK_MODELS, QUICK_SETTINGS) if args.quick else (MODELS, SETTINGS)
        methods = tuple(args.methods.split(","))
        new = trace_grid(models, grid, log, methods=methods, precision=args.precision)
        write_rows(_kept_rows(methods, args.precision) + new)
    if args.validate:
        print("\n".join(validate(log)) + "\n")
    print(table(show_rows=not args.no_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
