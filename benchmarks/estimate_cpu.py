"""Table 2: real training steps on this CPU vs the analytic estimate for `--gpu cpu`.

    .venv/bin/python benchmarks/estimate_cpu.py          # ~5-10 min on 2 cores
    .venv/bin/python benchmarks/estimate_cpu.py --quick  # the two smaller models only

Models: Llama-style configs with random weights -- the bundled tiny model, a ~20M and a
~100M parameter model -- trained with full, LoRA, QLoRA and DPO (LoRA, the runners'
default) over a small grid of batch sizes and sequence lengths.  Precision fp32, as the
runners train on a CPU (runners._common.resolve_runtime); the estimate uses the same.

Each configuration runs in a forked child so that memory freed by one never hides the next
one's growth.  Inside it the model is built with the runners' loading recipe
(runners.trace_model, real tensors), the peak is measured exactly as the runners measure a
CPU run (runners._memory.PeakMemoryMeter: resident set size above the baseline taken just
before training, sampled every 20 ms plus the kernel's high-water mark), over two steps of
runners.trace_step.run_step (the first creates the optimizer states).  The estimate
counterpart is advisor.calibration.comparable_gib: total minus weights minus the host
runtime -- what training adds on top of the loaded model.

Time: the wall time of the second step (the first also allocates the optimizer states)
against the estimate for one micro-step's tokens, with and without the CPU row's fixed
per-step overhead (`step_overhead_s` in advisor/hardware_catalog.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("full", "lora", "qlora", "dpo")
# name -> (config overrides on a Llama config, (batch, seq) grid)
MODELS = {
    "tiny (bundled)": (None, ((1, 128), (4, 256))),
    "llama-20m": (dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                       num_key_value_heads=2, vocab_size=16000, tie_word_embeddings=True), ((1, 128), (4, 256))),
    "llama-100m": (dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                        num_key_value_heads=4, vocab_size=16000, tie_word_embeddings=True), ((1, 128), (2, 256))),
}
GIB = 1024**3


def model_dirs(root: Path, names) -> dict[str, str]:
    """config.json folders the trace machinery and advisor.models both read."""
    from transformers import LlamaConfig

    from tunewise.assets import tiny_model_path

    out = {}
    for name in names:
        overrides = MODELS[name][0]
        if overrides is None:
            out[name] = str(tiny_model_path())
            continue
        folder = root / name
        LlamaConfig(max_position_embeddings=1024, **overrides).save_pretrained(folder)
        out[name] = str(folder)
    return out


def measure(path: str, method: str, batch: int, seq: int) -> dict:
    """One configuration, in this (child) process: RSS delta over two training steps."""
    import torch

    from benchmarks.gpu_calibration import _Null
    from runners._memory import PeakMemoryMeter
    from runners.trace import _build_meta, _check_method, _materialize
    from runners.trace_model import load_config, prepare_bitsandbytes, recipe
    from runners.trace_step import build_optimizer, prepare_for_training, run_step
    from tunewise.settings import TrainSettings

    torch.manual_seed(0)
    s = TrainSettings(batch_size=batch, seq_len=seq, precision="fp32")
    meth, base = _check_method(method, s)
    plan = recipe(s, base)
    policy, reference = _build_meta(load_config(path), meth, plan)
    prepare_bitsandbytes()
    _materialize(policy, reference, _Null(), adapters=plan.lora is not None, real=True)
    prepare_for_training(policy, reference, meth, s)
    optimizer = build_optimizer([p for p in policy.parameters() if p.requires_grad], s)
    meter = PeakMemoryMeter("cpu")
    meter.start()
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        run_step(policy, reference, optimizer, meth, s, _Null(), autocast=plan.autocast)
        seconds.append(time.perf_counter() - start)
    peak = meter.stop()
    return {"rss_delta_gib": peak.rss_delta_gib, "step_s": seconds[-1]}


def _child(queue, args) -> None:
    try:
        queue.put(measure(*args))
    except Exception as exc:  # reported in the table, not swallowed
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_isolated(args) -> dict:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def estimate_gib(path: str, method: str, batch: int, seq: int) -> tuple[float, float, float]:
    """(comparable GiB, seconds per step with the fixed step overhead, and without it)."""
    import dataclasses

    from advisor.calibration import comparable_gib
    from advisor.estimate import estimate
    from advisor.hardware import resolve_hardware
    from advisor.memory import MemoryKnobs
    from advisor.models import resolve_model
    from tunewise.methods import Method
    from tunewise.settings import TrainSettings

    hw = resolve_hardware("cpu")
    s = TrainSettings(batch_size=batch, seq_len=seq, precision="fp32")
    tokens = batch * seq * (2 if method == "dpo" else 1)  # one micro-step

    def run(device):
        return estimate(resolve_model(path), Method(method), device, s, tokens=tokens,
                        knobs=MemoryKnobs(preference_adapter=True))

    est = run(hw)
    bare = run(dataclasses.replace(hw, step_overhead_s=None))
    return comparable_gib(est.memory, hw, 1), est.time_hours * 3600, bare.time_hours * 3600


def run(names, log) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = model_dirs(Path(tmp), names)
        for name in names:
            from advisor.models import resolve_model

            params = resolve_model(dirs[name]).params
            for method in METHODS:
                for batch, seq in MODELS[name][1]:
                    measured = run_isolated((dirs[name], method, batch, seq))
                    gib, step_s, bare_s = estimate_gib(dirs[name], method, batch, seq)
                    row = {"model": name, "params": params, "method": method, "batch": batch, "seq": seq,
                           "estimate_gib": gib, "estimate_step_s": step_s, "estimate_step_s_no_overhead": bare_s,
                           **measured}
                    rows.append(row)
                    log(f"  {name} {method} b{batch} s{seq}: {json.dumps(measured)}")
    return rows


def render(rows: list[dict]) -> str:
    from benchmarks.estimate_accuracy import error_table

    lines = ["Table 2 - real CPU training steps (fp32, RSS above the pre-training baseline) vs estimate", "",
             f"{'model':<15} {'params':>11} {'method':<6} {'b':>2} {'seq':>4} {'measured':>9} {'estimate':>9} "
             f"{'err':>6} {'step s':>7} {'est s':>7} {'err':>6} {'no-ovh':>7} {'err':>6}"]
    groups: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<15} {r['params']:>11,} {r['method']:<6} {r['batch']:>2} {r['seq']:>4}  "
                         f"failed: {r['error']}")
            continue
        measured = r["rss_delta_gib"]
        err = (r["estimate_gib"] - measured) / measured if measured > 0 else None
        if err is not None:
            groups.setdefault(r["method"], []).append(err)
        t_err = (r["estimate_step_s"] - r["step_s"]) / r["step_s"]
        bare_err = (r["estimate_step_s_no_overhead"] - r["step_s"]) / r["step_s"]
        times.setdefault("with overhead", []).append(t_err)
        times.setdefault("without", []).append(bare_err)
        lines.append(f"{r['model']:<15} {r['params']:>11,} {r['method']:<6} {r['batch']:>2} {r['seq']:>4} "
                     f"{measured:>9.3f} {r['estimate_gib']:>9.3f} {'-' if err is None else f'{err:+.0%}':>6} "
                     f"{r['step_s']:>7.3f} {r['estimate_step_s']:>7.3f} {t_err:>+6.0%} "
                     f"{r['estimate_step_s_no_overhead']:>7.3f} {bare_err:>+6.0%}")
    groups["all"] = [e for v in groups.values() for e in v]
    big = [e for r, e in _pairs(rows) if r["params"] > 50e6]
    if big:
        groups["~100M only"] = big
    return "\n".join(lines + ["", "memory:"] + error_table(groups) + ["", "time per step:"] + error_table(times))


def _pairs(rows):
    for r in rows:
        if "error" not in r and r["rss_delta_gib"] > 0:
            yield r, (r["estimate_gib"] - r["rss_delta_gib"]) / r["rss_delta_gib"]


def table() -> str:
    """For benchmarks/estimate_accuracy.py (runs the grid: minutes)."""
    return render(run(list(MODELS), lambda text: print(text, file=sys.stderr, flush=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two smaller models")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    names = list(MODELS)[:2] if args.quick else list(MODELS)
    rows = run(names, lambda text: print(text, file=sys.stderr, flush=True))
    if args.json:
        from tunewise.atomic import atomic_write_json

        atomic_write_json(args.json, rows)
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
