"""Measure the tiny model: retention-suite accuracy and domain multiple-choice accuracy.

Both are lm-eval multiple-choice tasks scored by log-likelihood (metric `acc`).  The
domain task scores each candidate answer after the eval row's `prompt` (the chat template
rendered up to the assistant turn) with an empty target delimiter: exactly the tokens an
SFT run on `domain_train_messages.jsonl` trains on.  Chance = mean of 1/len(choices).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

DOMAIN_TASK = "tw_domain_mc"


def domain_task_yaml(eval_path: Path) -> str:
    import yaml

    config = {
        "task": DOMAIN_TASK,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(Path(eval_path).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "answer",
        "doc_to_choice": "{{choices}}",
        "target_delimiter": "",
        "num_fewshot": 0,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def chance_levels(suite: str, eval_path: Path) -> dict[str, float]:
    """Expected accuracy of a uniform random guess, per task, from the data files."""
    from evals.suites import SUITES_DIR, suite_tasks

    def mean_inverse(path: Path) -> float:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return sum(1 / len(r["choices"]) for r in rows) / len(rows)

    levels = {t: mean_inverse(SUITES_DIR / suite / "data" / f"{t}_test.jsonl") for t in suite_tasks(suite)}
    levels[DOMAIN_TASK] = mean_inverse(Path(eval_path))
    return levels


def measure(model_dir: Path, eval_path: Path, *, suite: str | None = None, batch_size: int = 32,
            limit: int | None = None, model=None) -> dict[str, dict]:
    """task -> {acc, stderr, n, chance} for the retention suite and the domain MC task.

    stderr is lm-eval's formula for mean metrics (sample std / sqrt(n)), computed here so
    bootstrap_iters can be 0.

    `model` may be an already loaded model (e.g. a fine-tuned one) using model_dir's tokenizer.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evals.suites import DEFAULT_SUITE, include_path, suite_tasks

    suite = suite or DEFAULT_SUITE
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = model if model is not None else AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.eval()
    with tempfile.TemporaryDirectory() as domain_dir:
        Path(domain_dir, f"{DOMAIN_TASK}.yaml").write_text(domain_task_yaml(eval_path), encoding="utf-8")
        manager = TaskManager(include_path=[include_path(suite), domain_dir], include_defaults=False)
        tasks = [*suite_tasks(suite), DOMAIN_TASK]
        out = lm_eval.simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size),
            tasks=tasks, task_manager=manager, limit=limit, log_samples=False, bootstrap_iters=0,
        )
    chance = chance_levels(suite, eval_path)
    scores = {}
    for task in tasks:
        acc, n = out["results"][task]["acc,none"], out["n-samples"][task]["effective"]
        stderr = math.sqrt(acc * (1 - acc) / (n - 1)) if n > 1 else float("nan")
        scores[task] = {"acc": acc, "stderr": stderr, "n": n, "chance": chance[task]}
    return scores


def format_table(scores: dict[str, dict]) -> str:
    """A fixed-width table: task, n, accuracy, chance, accuracy minus chance."""
    lines = [f"{'task':<14} {'n':>4} {'acc':>6} {'stderr':>7} {'chance':>7} {'acc-chance':>10}"]
    for task, s in scores.items():
        lines.append(f"{task:<14} {s['n']:>4} {s['acc']:>6.3f} {s['stderr']:>7.3f} {s['chance']:>7.3f} "
                     f"{s['acc'] - s['chance']:>+10.3f}")
    return "\n".join(lines)
