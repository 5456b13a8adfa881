"""What tunewise lets a model folder do: offline by default, safetensors only, no remote code.

Three rules (DESIGN.md "The embedded default"; issue "Untrusted content"):

- Offline: the CLI sets HF_HUB_OFFLINE=1 unless the user set it.  A hub id that is not in
  the local cache is refused with one plain line instead of a long download error.
- Weights: only `*.safetensors` load (`use_safetensors=True`): a pickled `pytorch_model.bin`
  can run arbitrary code when unpickled.  `--allow-pickle-weights` opts in, with a warning.
- Code: `trust_remote_code=False` (transformers' default, passed explicitly) so a model's
  own Python files never run; `--trust-remote-code` opts in, with a warning.

The opt-ins travel as environment variables (TUNEWISE_TRUST_REMOTE_CODE,
TUNEWISE_ALLOW_PICKLE_WEIGHTS) so that processes started by `accelerate launch` inherit
them; `opt_in()` sets them for one command and restores them afterwards.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, first_line

TRUST_ENV = "TUNEWISE_TRUST_REMOTE_CODE"
PICKLE_ENV = "TUNEWISE_ALLOW_PICKLE_WEIGHTS"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # name or org/name
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TRUST_WARNING = ("warning: --trust-remote-code: the model's own Python files will run with your "
                 "permissions; use it only for a model you trust")
PICKLE_WARNING = ("warning: --allow-pickle-weights: pickled weights (.bin) can run arbitrary code "
                  "when loaded; use it only for files you trust")


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "False")


def trust_remote_code() -> bool:
    return _flag(TRUST_ENV)


def allow_pickle_weights() -> bool:
    return _flag(PICKLE_ENV)


def is_offline() -> bool:
    return _flag("HF_HUB_OFFLINE") or _flag("TRANSFORMERS_OFFLINE")


def default_offline() -> None:
    """Offline unless the user said otherwise (called by the CLI before any hub import)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    # The `kernels` package (hub kernels transformers may use) warns on every load that offline
    # it cannot check a kernel's publisher: a library line before each one-line input error.
    logging.getLogger("kernels").setLevel(logging.ERROR)


@contextmanager
def opt_in(*, trust_code: bool, allow_pickle: bool) -> Iterator[list[str]]:
    """Set the opt-in variables for one command; yields the warnings to print."""
    saved = {k: os.environ.get(k) for k in (TRUST_ENV, PICKLE_ENV)}
    warnings = []
    if trust_code:
        os.environ[TRUST_ENV] = "1"
        warnings.append(TRUST_WARNING)
    if allow_pickle:
        os.environ[PICKLE_ENV] = "1"
        warnings.append(PICKLE_WARNING)
    try:
        yield warnings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_kwargs() -> dict[str, Any]:
    """`from_pretrained` keyword arguments for the rules above."""
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code()}
    if not allow_pickle_weights():
        kwargs["use_safetensors"] = True
    return kwargs


def load_tokenizer(model: str, what: str = "tokenizer"):
    """`model`'s tokenizer under the rules above (`check_model` first, remote code only when
    opted in), or one InputError line naming the model and what could not load."""
    from transformers import AutoTokenizer

    check_model(model)
    try:
        return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the {what}{_where_from()}: {first_line(exc)}",
                         path=model, field="model") from None


def load_causal_lm(model: str, load_kwargs: dict[str, Any]):
    """`model`'s causal LM under the rules above (`check_model` first; `load_kwargs` should
    carry `load_kwargs()`), or one InputError line naming the model."""
    from transformers import AutoModelForCausalLM

    check_model(model)
    try:
        return AutoModelForCausalLM.from_pretrained(model, **load_kwargs)
    except OSError as exc:
        raise InputError(f"cannot load the model{_where_from()}: {first_line(exc)}",
                         path=model, field="model") from None


def _where_from() -> str:
    """What a load may read from, for its error line: offline only a folder or the cache."""
    return " (offline: a local folder or a cached hub id)" if is_offline() else ""


def check_model(model: str) -> None:
    """Refuse, in one line, a model tunewise will not load: an uncached hub id while offline,
    or a local folder holding only pickled weights without the opt-in."""
    path = Path(model).expanduser()
    if path.exists():
        _check_weights(path)
        return
    if not HUB_ID.fullmatch(model):  # "./my-model", "/data/m", "a/b/c": a folder that is not there
        raise InputError("no such model folder (and not a hub id such as org/name)", path=model, field="model")
    if is_offline() and not _cached(model):
        raise InputError(
            f"{model} is not in the local cache and tunewise is offline (HF_HUB_OFFLINE=1): "
            f"download it once (`hf download {model}`), point to a local folder, or set HF_HUB_OFFLINE=0",
            field="model",
        )


def _check_weights(folder: Path) -> None:
    if not folder.is_dir() or allow_pickle_weights():
        return
    files = [p.name for p in folder.iterdir() if p.is_file()]
    if any(name.endswith(".safetensors") for name in files):
        return
    pickled = sorted(name for name in files if name.endswith(PICKLE_SUFFIXES))
    if pickled:
        raise InputError(
            f"only pickled weights here ({', '.join(pickled[:3])}); tunewise loads safetensors only. "
            "Convert them, or pass --allow-pickle-weights if you trust these files",
            path=folder,
            field="model",
        )


def _cached(repo_id: str) -> bool:
    """Is the model's config.json in the local Hugging Face cache?"""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers brings huggingface_hub
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an id that is not even a valid repo name is not cached
        return False
    return isinstance(found, str)
