"""Run and eval records: the files `report` reads.  Nothing else crosses stages.

`runs/<name>/record.json`   -> RunRecord   (schema tunewise/run/v1)
`runs/<name>/prompt.json`   -> PromptConfig (schema tunewise/prompt/v1; prompt runs)
`<out>/eval.json`           -> EvalRecord  (schema tunewise/eval/v1)

Records are written atomically; a failed or interrupted run still writes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.atomic import atomic_write_json
from tunewise.errors import InputError
from tunewise.schema import check_schema, from_mapping, read_json, stamp, to_mapping

RunStatus = Literal["running", "completed", "failed", "interrupted"]
Verdict = Literal["gain", "regression", "no detectable change"]


@dataclass
class PeakMemory:
    """Measured peak memory of the training process (per rank 0 unless per_rank is set).

    CUDA: torch.cuda.max_memory_allocated / max_memory_reserved.  CPU: peak resident set
    size above the baseline taken just before training started (`rss_delta_gib`).
    """

    device: str  # "cuda" | "cpu" | "mps"
    allocated_gib: float | None = None
    reserved_gib: float | None = None
    rss_delta_gib: float | None = None
    rss_peak_gib: float | None = None
    per_rank: list[dict[str, Any]] = field(default_factory=list)

    @property
    def comparable_gib(self) -> float | None:
        """The number to compare with an estimate: reserved on CUDA, RSS delta on CPU."""
        return self.reserved_gib if self.device == "cuda" else self.rss_delta_gib


@dataclass
class RunRecord:
    name: str
    method: str
    base_model: str  # local folder or hub id of the base
    status: RunStatus = "running"
    error: str | None = None
    plan: dict[str, Any] | None = None  # the plan as given (plan/v1 mapping)
    config: dict[str, Any] = field(default_factory=dict)  # resolved settings actually used
    seed: int = 42
    started_at: str | None = None  # ISO 8601 UTC
    finished_at: str | None = None
    wall_time_s: float | None = None
    train_time_s: float | None = None
    steps: int = 0
    planned_steps: int | None = None
    train_tokens: int = 0
    tokens_per_s: float | None = None
    final_loss: float | None = None
    peak_memory: PeakMemory | None = None
    estimate: dict[str, Any] | None = None  # the estimate/v1 it was planned with
    trainable_params: int | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # role -> path relative to run dir
    init_from: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)  # device name, count, torch device
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific (DPO margins, RLHF...)

    def to_dict(self) -> dict[str, Any]:
        return stamp("run", to_mapping(self))

    def write(self, run_dir: str | Path) -> Path:
        return atomic_write_json(Path(run_dir) / "record.json", self.to_dict())


def load_run_record(run_dir: str | Path) -> RunRecord:
    run_dir = Path(run_dir)
    path = run_dir / "record.json" if run_dir.is_dir() else run_dir
    if not path.exists():
        raise InputError("no record.json: not a tunewise run folder", path=run_dir)
    raw = check_schema(read_json(path), "run", path)
    return from_mapping(RunRecord, raw, path)


@dataclass
class PromptConfig:
    """`prompt.json`: the few-shot configuration a prompt run produces (no weights change).

    An evaluator scores the base model with `prefix` prepended to every prompt (or, for
    chat-level use, `messages` placed before the conversation).

    base_model      the model the prompt is for (local folder, absolute, or hub id)
    format          shape of the training file the demonstrations came from
    k               demonstrations actually included (<= requested_k when the budget is tight)
    requested_k     the plan's num_fewshot
    seed            the seed that ordered the candidates (same seed, same prompt)
    demonstrations  [{prompt, completion, line}]: plain strings; chat data is rendered with
                    the base tokenizer's chat template (as the domain eval renders prompts);
                    `line` is the 1-based source line in the training file
    messages        chat data only: the demonstrations as user/assistant turns
    separator       text between demonstrations inside `prefix`
    prefix          ready to prepend: every demonstration's prompt + completion, joined by
                    `separator`, ending with it (or with the chat template's own newline)
    prefix_tokens   tokens of `prefix` with the base tokenizer
    seq_len         the context budget the prompt was sized for
    reserved_tokens room kept for the query and its answer (p95 prompt + p95 completion)
    selection       how the demonstrations were chosen
    source          the training file
    """

    base_model: str
    format: str
    k: int
    requested_k: int
    seed: int
    demonstrations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    separator: str = "\n\n"
    prefix: str = ""
    prefix_tokens: int = 0
    seq_len: int = 0
    reserved_tokens: int = 0
    selection: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return stamp("prompt", to_mapping(self))

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())


def load_prompt_config(path: str | Path) -> PromptConfig:
    path = Path(path)
    if path.is_dir():
        path = path / "prompt.json"
    raw = check_schema(read_json(path), "prompt", path)
    return from_mapping(PromptConfig, raw, path)


@dataclass
class TaskScore:
    """One model variant on one task (from lm-eval's results)."""

    task: str
    metric: str  # e.g. "acc", "exact_match", "pref_acc"
    score: float
    stderr: float | None
    n: int
    version: str
    num_fewshot: int
    higher_is_better: bool = True
    kind: str = "domain"  # domain | retention | preference
    samples: str | None = None  # per-example results (JSONL), relative to eval.json


@dataclass
class Comparison:
    """A run vs the base on one task, paired per example."""

    run: str
    task: str
    metric: str
    base: float
    score: float
    diff: float  # score - base
    ci_low: float  # paired 95% interval of diff
    ci_high: float
    n: int
    test: str  # "paired-bootstrap" | "mcnemar"
    p_value: float | None
    verdict: Verdict
    kind: str = "domain"


@dataclass
class Variant:
    name: str  # "base" or the run name
    method: str  # "base" or a Method value
    run_dir: str | None
    scores: list[TaskScore] = field(default_factory=list)


@dataclass
class EvalSettings:
    """Everything that must be identical for two scores to be compared."""

    batch_size: int
    dtype: str
    limit: int | None  # quick mode when set
    num_fewshot: int | None  # None: each task's own default
    device: str
    bootstrap_iters: int
    seed: int = 1234
    apply_chat_template: bool = False


@dataclass
class EvalRecord:
    base_model: str
    settings: EvalSettings
    variants: list[Variant] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    quick: bool = False
    warnings: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)  # prompt, base, tuned outputs
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    wall_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return stamp("eval", to_mapping(self))

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())


def load_eval_record(path: str | Path) -> EvalRecord:
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    raw = check_schema(read_json(path), "eval", path)
    return from_mapping(EvalRecord, raw, path)
