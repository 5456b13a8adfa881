"""Cost and time of each candidate method on a few more GPUs than the advice was run for.

The advice holds one estimate per method for the GPU the user asked about.  To show
"what if we rented something else", the report re-estimates each candidate on a few
reference GPUs with the advisor (pure Python, no torch; imported lazily here), with the
candidate's settings -- or, where those do not fit, at micro-batch 1 with the same global
batch, as the advisor's policy would.  This is
an optional enrichment: when the advisor is missing or cannot estimate, the report keeps
the advice's own numbers and says why the others are absent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from reports.views import AdviceView, EstimateView, parse_estimate

# Reference GPUs across price classes; only names present in the catalog are used.
REFERENCE_GPUS = ("rtx-4090", "l40s", "a100-80gb", "h100-sxm", "h100-80gb")
MAX_EXTRA = 3

# estimator(candidate, gpu_name) -> estimate/v1 mapping
Estimator = Callable[[EstimateView, str], dict]


def extra_gpu_estimates(
    advice: AdviceView,
    *,
    estimator: Estimator | None = None,
    gpu_names: list[str] | None = None,
) -> tuple[list[EstimateView], str | None]:
    """Estimates of every candidate on other GPUs, and a note when that was impossible."""
    have = {c.hardware for c in advice.candidates}
    if len(have) > 1 or not advice.candidates:
        return [], None  # the advice already compares GPUs, or there is nothing to compare
    try:
        if estimator is None or gpu_names is None:
            default_estimator, default_names = _advisor_estimator()
            estimator = estimator or default_estimator
            gpu_names = gpu_names if gpu_names is not None else default_names
        names = [n for n in gpu_names if n not in have][:MAX_EXTRA]
        out = []
        for candidate in advice.candidates:
            if candidate.supported is False:
                continue
            for name in names:
                out.append(parse_estimate(estimator(candidate, name), where=f"{candidate.method}@{name}."))
        return out, None
    except Exception as exc:  # noqa: BLE001 - optional enrichment must never sink the report
        return [], f"Other GPUs could not be estimated ({type(exc).__name__}: {exc})."


def _advisor_estimator() -> tuple[Estimator, list[str]]:
    """The advisor's estimate() bound to the candidate's model, method and settings."""
    from advisor.estimate import estimate
    from advisor.hardware import list_hardware, resolve_hardware
    from advisor.models import resolve_model
    from tunewise.methods import Method
    from tunewise.settings import TrainSettings

    catalog = {h.name: h for h in list_hardware() if h.kind == "gpu"}
    names = [n for n in REFERENCE_GPUS if n in catalog]
    if not names:  # an unfamiliar catalog: spread over memory sizes instead
        ordered = sorted(catalog.values(), key=lambda h: h.memory_gib)
        names = [h.name for h in ordered[:: max(1, len(ordered) // MAX_EXTRA)]]
    known = {f.name for f in dataclasses.fields(TrainSettings)}

    def run(candidate: EstimateView, gpu: str) -> dict:
        if not candidate.model:
            raise ValueError(f"candidate {candidate.method} names no model")
        # The candidate's `tokens` is the total over all epochs, so plan one "epoch" of it.
        settings = TrainSettings(**{k: v for k, v in candidate.settings.items() if k in known}).replace(epochs=1.0)
        spec, method, hardware = resolve_model(candidate.model), Method(candidate.method), resolve_hardware(gpu)
        result = estimate(spec, method, hardware, settings, gpus=candidate.gpus, tokens=candidate.tokens)
        if not result.to_dict().get("fits", True) and settings.batch_size > 1:
            # The policy would shrink the micro-batch on a smaller GPU; do the same,
            # keeping the global batch: micro-batch 1, more accumulation, checkpointing.
            smaller = settings.replace(
                batch_size=1, grad_accum=settings.batch_size * settings.grad_accum, gradient_checkpointing=True
            )
            result = estimate(spec, method, hardware, smaller, gpus=candidate.gpus, tokens=candidate.tokens)
        return result.to_dict()

    return run, names
