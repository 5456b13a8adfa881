"""Running lm-eval on the base model and every variant, with the base loaded once.

- The base model is loaded once.  Prompt runs use it as is, with their demonstrations
  passed as lm-eval's `system_instruction` (prepended to every prompt; the tasks are
  untouched).  PEFT adapters (LoRA, QLoRA, DPO...) are loaded into that same model with
  `PeftModel.from_pretrained` / `load_adapter` and selected with `set_adapter`, unmerged,
  as lm-eval's own `peft=` loader does (huggingface/peft#1904: merged and unmerged differ
  in the last bits).  Full fine-tunes are loaded from their folder, evaluated, and freed.
- Each variant is wrapped as `HFLM(pretrained=model, tokenizer=tok, batch_size=N)` with an
  explicit batch size: `simple_evaluate(batch_size=...)` is ignored for a pre-built model
  (eval_notes.md 1.5), and batch size changes scores slightly (1.8).
- `TaskManager(include_path=..., include_defaults=False)` unless the user named built-in
  lm-eval tasks: indexing lm-eval's thousands of YAML files costs seconds for nothing.
- HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set (when unset) before lm_eval, datasets or
  transformers are imported: they are read at import time (eval_notes.md 1.7).
"""

from __future__ import annotations

import gc
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.variants import VariantSpec
from tunewise.errors import InputError, RunFailedError, first_line
from tunewise.records import EvalSettings

DTYPES = ("float32", "bfloat16", "float16")
_ORDER = {"base": 0, "prompt": 1, "model": 2, "adapter": 3}  # adapters last: they wrap the base


def ensure_offline() -> None:
    """Default to offline hub and datasets access (a user may still opt in with =0)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")


@dataclass
class VariantOutput:
    results: dict[str, Any]  # simple_evaluate's return value (with "samples")
    examples: list[str] = field(default_factory=list)  # generations for the example prompts
    warnings: list[str] = field(default_factory=list)


@dataclass
class HarnessJob:
    """What to evaluate and how; identical for every variant."""

    base_model: str
    variants: list[VariantSpec]
    tasks: list[str]
    settings: EvalSettings
    prompt_prefixes: dict[str, str] = field(default_factory=dict)  # variant -> system_instruction
    example_prompts: list[str] = field(default_factory=list)  # generated for the report when set
    example_max_tokens: int = 48
    probe_text: str = ""  # input of the adapter no-op check


DEVICE = re.compile(r"(cpu|cuda|mps)(:\d+)?")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device_name(device: str) -> None:
    """Refuse a device string torch would reject with a traceback (`tpu`) or one evaluation
    has no code path for (`meta`, `xla`); needs no torch, so it fails before any import."""
    if not DEVICE.fullmatch(device):
        raise InputError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps", field="device")


def resolve_device(device: str | None) -> str:
    """The device to evaluate on, refused in one line when this machine lacks it (as `tunewise
    run` does): without the check torch fails inside the first model load, after the tokenizer
    and task files, with an AssertionError traceback."""
    if device is None:
        return default_device()
    check_device_name(device)
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"--device {device} requested but torch sees no CUDA GPU", field="device")
        if index and int(index) >= count:
            raise InputError(f"--device {device} requested but torch sees {count} CUDA GPU(s) "
                             f"(cuda:0..cuda:{count - 1})", field="device")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device} requested but torch sees no MPS device", field="device")
    return device


def default_dtype(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def task_manager(include_paths: list[str], include_defaults: bool):
    ensure_offline()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_paths or None, include_defaults=include_defaults)


def check_tasks(manager, names: list[str], *, load: list[str]) -> None:
    """Unknown names -> InputError; `load` names are loaded once to prove their data is here."""
    known = set(manager.all_tasks)
    for name in names:
        if name not in known:
            raise InputError(f"unknown lm-eval task {name!r} (not a bundled suite, not an lm-eval task)",
                             field="retention")
    for name in load:
        try:
            manager.load([name])
        except Exception as exc:  # datasets raises many types when data is missing offline
            detail = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"lm-eval task {name!r} cannot load its data ({detail}); "
                "it is not available offline: download it into the Hugging Face cache first "
                "(with HF_DATASETS_OFFLINE=0) or use the bundled suites (--retention builtin)",
                field="retention",
            ) from None


def evaluate_variants(job: HarnessJob, manager) -> dict[str, VariantOutput]:
    """Evaluate every variant of `job` (see the module docstring); keyed by variant name."""
    ensure_offline()
    import torch

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    torch_dtype = getattr(torch, job.settings.dtype)
    model, tok = _load(job.base_model, torch_dtype, job.settings.device)
    outputs: dict[str, VariantOutput] = {}
    peft_model = None
    for index, variant in enumerate(sorted(job.variants, key=lambda v: _ORDER[v.kind])):
        if variant.kind == "model":
            with _full_model(variant, tok, torch_dtype, job.settings.device) as (full, full_tok):
                outputs[variant.name] = _run(job, manager, full, full_tok, variant)
            continue
        if variant.kind == "adapter":
            peft_model = _activate_adapter(peft_model, model, variant, f"tw_adapter_{index}")
            output = _run(job, manager, peft_model, tok, variant)
            output.warnings += _adapter_noop_warning(peft_model, tok, variant, job.probe_text)
            outputs[variant.name] = output
            continue
        assert peft_model is None, "base and prompt variants run before any adapter is loaded"
        outputs[variant.name] = _run(job, manager, model, tok, variant)
    return outputs


def _load(path: str, torch_dtype, device: str):
    from tunewise import hub

    tok = hub.load_tokenizer(path)  # checks the folder / offline cache and the weights first
    spread = spread_over_gpus(device)
    placement = {"device_map": "auto"} if spread else {}
    model = hub.load_causal_lm(path, {"dtype": torch_dtype, **placement, **hub.load_kwargs()})
    return (model if spread else model.to(device)).eval(), tok


def spread_over_gpus(device: str) -> bool:
    """Plain `cuda` with several visible GPUs: spread the layers over all of them
    (accelerate's device_map="auto"), so a model larger than one GPU still evaluates; they
    run one after another (no speed-up).  `cuda:N` keeps the model on that one GPU."""
    import torch

    return device == "cuda" and torch.cuda.is_available() and torch.cuda.device_count() > 1


@contextmanager
def _full_model(variant: VariantSpec, base_tok, torch_dtype, device: str) -> Iterator[tuple[Any, Any]]:
    """A fully fine-tuned model from its folder, freed afterwards (two full models never coexist
    longer than one variant's evaluation)."""
    folder = Path(variant.model or "")
    has_tokenizer = any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    model, tok = _load(str(folder), torch_dtype, device)
    try:
        yield model, (tok if has_tokenizer else base_tok)
    finally:
        del model
        gc.collect()
        _empty_cache()


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _activate_adapter(peft_model, base_model, variant: VariantSpec, adapter_name: str):
    """Load the adapter into the one PEFT-wrapped base and make it the active one."""
    from peft import PeftModel

    if peft_model is None:
        peft_model = PeftModel.from_pretrained(base_model, variant.adapter, adapter_name=adapter_name)
    else:
        peft_model.load_adapter(variant.adapter, adapter_name=adapter_name)
    peft_model.set_adapter(adapter_name, inference_mode=True)
    peft_model.eval()
    if peft_model.active_adapter != adapter_name:  # pragma: no cover - peft contract
        raise RunFailedError(f"adapter of {variant.name} did not become active")
    return peft_model


def _adapter_noop_warning(peft_model, tok, variant: VariantSpec, probe: str) -> list[str]:
    """Warn when the active adapter leaves the logits bit-identical to the base's."""
    import torch

    text = probe or "The quick brown fox jumps over the lazy dog."
    ids = tok(text, return_tensors="pt").to(peft_model.device)
    with torch.no_grad():
        tuned = peft_model(**ids).logits
        with peft_model.disable_adapter():
            base = peft_model(**ids).logits
    if torch.equal(tuned, base):
        return [
            f"{variant.name}: the adapter leaves the base model's outputs unchanged (identical "
            "logits); it is not applied or was never trained (e.g. LoRA B = 0)"
        ]
    return []


def _run(job: HarnessJob, manager, model, tok, variant: VariantSpec) -> VariantOutput:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    settings = job.settings
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=settings.batch_size)
    prefix = job.prompt_prefixes.get(variant.name)
    results = simple_evaluate(
        model=lm,
        tasks=list(job.tasks),
        num_fewshot=settings.num_fewshot,
        limit=settings.limit,
        bootstrap_iters=settings.bootstrap_iters,
        log_samples=True,
        apply_chat_template=settings.apply_chat_template,
        system_instruction=prefix,
        task_manager=manager,
        fewshot_random_seed=settings.seed,
    )
    if results is None:  # pragma: no cover - only non-zero ranks get None
        raise RunFailedError(f"lm-eval returned no results for {variant.name}")
    return VariantOutput(results=results, examples=_generate(lm, job, prefix))


def _generate(lm, job: HarnessJob, prefix: str | None) -> list[str]:
    """Greedy generations for the report's example prompts, through lm-eval's own path."""
    if not job.example_prompts:
        return []
    from lm_eval.api.instance import Instance

    kwargs = {"until": ["\n\n"], "do_sample": False, "temperature": 0.0, "max_gen_toks": job.example_max_tokens}
    requests = [
        Instance(request_type="generate_until", doc={}, arguments=((prefix or "") + p, dict(kwargs)), idx=0)
        for p in job.example_prompts
    ]
    return [text.strip() for text in lm.generate_until(requests, disable_tqdm=True)]
