"""`build_report`: records -> figures -> one HTML file, written atomically."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from reports.gpu_compare import Estimator
from reports.html import render_page
from reports.inputs import collect_inputs
from reports.sections import build_content
from tunewise.atomic import atomic_write_text
from tunewise.errors import InputError

DEFAULT_TITLE = "Fine-tuning report"


def build_report(
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    advice: str | Path | None = None,
    eval_path: str | Path | None = None,
    title: str | None = None,
    estimator: Estimator | None = None,
    gpu_names: list[str] | None = None,
    generated_at: datetime | None = None,
) -> Path:
    """Read run folders / eval.json / advice JSON and write one self-contained HTML page.

    `estimator` and `gpu_names` override how extra GPUs are estimated (default: the
    advisor, if importable); `generated_at` pins the timestamp for reproducible output.
    """
    paths = list(paths)
    if not paths and advice is None and eval_path is None:
        raise InputError("nothing to report: give run folders, a runs/ folder, eval.json or --advice")
    inputs = collect_inputs(paths, advice=advice, eval_path=eval_path)
    content = build_content(inputs, estimator=estimator, gpu_names=gpu_names)
    page = render_page(content, title=title or DEFAULT_TITLE, generated_at=generated_at)
    return atomic_write_text(out, page)
