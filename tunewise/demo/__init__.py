"""`tunewise demo`: the whole journey on the bundled tiny model, in minutes on a laptop CPU.

    from tunewise.demo import DemoOptions, run_demo
    result = run_demo(DemoOptions(out="tunewise-demo", quick=True))

1. advise   the data-size ladder and real models on real GPUs (ladder.py, no torch)
2. run      each method on the tiny model through runners.run_plan (plans.py)
3. eval     every run vs the base with evals.evaluate.evaluate_runs: the bundled
            held-out domain questions, the bundled general-skill suite (forgetting), and
            the held-out preference pairs when DPO/RLHF ran
4. report   reports.render.build_report, then the summary (summary.py)

Output folders are handled by output.py: a fresh subfolder per demo, published only when
complete.  Progress goes to `log` (the CLI sends it to stderr).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.demo.plans import DEMO_METHODS, DemoData, bundled, demo_plan, parse_methods
from tunewise.methods import Method

__all__ = ["DEMO_METHODS", "DemoOptions", "DemoResult", "parse_methods", "run_demo"]

Log = Callable[[str], None]
EVAL_BATCH = 32  # one batch size for every variant (eval.json compares like with like)


@dataclass(frozen=True)
class DemoOptions:
    methods: tuple[Method, ...] = DEMO_METHODS
    out: str = "tunewise-demo"
    quick: bool = False


@dataclass
class DemoResult:
    out: Path  # the --out folder
    folder: Path  # this demo's subfolder
    report: Path  # out/report.html (copy of folder/report.html)
    ladder: list[Any] = field(default_factory=list)  # ladder.Row
    summary: list[Any] = field(default_factory=list)  # summary.SummaryRow
    wall_s: float = 0.0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(options: DemoOptions, log: Log = _stderr) -> DemoResult:
    """Advise, run, evaluate and report into a fresh subfolder of options.out; publish it."""
    from tunewise.demo import output

    started = time.perf_counter()
    out = output.claim(Path(options.out))
    work = output.new_subfolder(out)
    log(f"demo: writing {output.display(work)}{' (quick)' if options.quick else ''}")
    with output.attempt(work):
        data = bundled()
        from tunewise.demo.ladder import run_ladder

        ladder = run_ladder(work / "advice", data.model, data.ladder, log)
        _one_thread()
        records = _run_methods(options, data, work / "runs", log)
        eval_record = _evaluate(options, data, work, log)
        from tunewise.demo.summary import summarise, to_json

        rows = summarise(records, eval_record)
        log("report: rendering")
        _report(options, work)
        wall = round(time.perf_counter() - started, 1)
        summary = {"quick": options.quick, "methods": [m.value for m in options.methods], "wall_s": wall,
                   "eval": str(work / "eval" / "eval.json"), "runs": to_json(rows)}
        report = output.publish(out, work, summary)
    return DemoResult(out=out, folder=work, report=report, ladder=ladder, summary=rows, wall_s=wall)


def _one_thread() -> None:
    """One intra-op thread for the whole demo, training and evaluation alike.

    The runners pick one thread for models under 50M parameters (runners/_common.py:
    a 1M-parameter model's matrices are too small to split, and on a busy 2-core machine
    an OpenMP team waits on a preempted thread every operation); the evaluation runs in
    this same process, so it gets the same.  OMP_NUM_THREADS still wins when set.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by OpenMP when torch first loads
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1)))


def _run_methods(options: DemoOptions, data: DemoData, runs: Path, log: Log) -> dict[str, Any]:
    """Each method in pipeline order through runners.run_plan; run name -> RunRecord."""
    from runners import run_plan

    records: dict[str, Any] = {}
    for method in options.methods:
        plan = demo_plan(method, data, quick=options.quick, after_lora="lora" in records)
        steps = plan.settings.max_steps if method.trains else None
        log(f"run: {method.value}" + (f" ({steps} steps)" if steps and method is not Method.RLHF else ""))
        record = run_plan(plan, runs, device="cpu")
        _one_thread()  # run_plan set torch's thread count for its model; keep the process on one
        log(f"run: {method.value} {record.status} in {record.wall_time_s:.0f} s")
        records[record.name] = record
    return records


def _evaluate(options: DemoOptions, data: DemoData, work: Path, log: Log):
    """Base and every run on the same tasks; lm-eval's progress bars go to eval/eval.log."""
    import contextlib
    import io

    from evals.evaluate import evaluate_runs
    from runners import quiet_upstream

    preference = [data.preference_eval] if {Method.DPO, Method.RLHF} & set(options.methods) else []
    runs = [work / "runs" / m.value for m in options.methods]
    log(f"eval: base + {len(runs)} run(s) on the domain questions, the general-skill suite"
        + (" and the preference pairs" if preference else "") + " (about a minute)")
    chatter = io.StringIO()
    try:
        with quiet_upstream(), contextlib.redirect_stderr(chatter):
            record = evaluate_runs(runs, domain=[data.domain_eval], preference=preference, retention="builtin",
                                   out=work / "eval", batch_size=EVAL_BATCH, device="cpu", dtype="float32")
    finally:
        (work / "eval").mkdir(parents=True, exist_ok=True)
        (work / "eval" / "eval.log").write_text(chatter.getvalue(), encoding="utf-8")
    for warning in record.warnings:
        log(f"eval: warning: {warning}")
    log(f"eval: done in {record.wall_time_s:.0f} s")
    return record


def _report(options: DemoOptions, work: Path) -> Path:
    """The HTML report over the runs, eval.json and the advice for the data the runs trained on."""
    from reports.render import build_report

    title = "tunewise demo: the bundled tiny model" + (" (quick)" if options.quick else "")
    return build_report([work / "runs"], work / "report.html", advice=work / "advice" / "tiny-domain_all.json",
                        eval_path=work / "eval" / "eval.json", title=title)
