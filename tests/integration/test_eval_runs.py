"""`evaluate_runs` on a tiny model: base + LoRA + zero LoRA + full + prompt run in one process,
and a cross-check of the adapter's scores against the plain `lm_eval` command line.

    .venv/bin/python -m pytest tests/integration/test_eval_runs.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.samples import read_rows
from tunewise.records import PromptConfig, RunRecord, load_eval_record

pytestmark = pytest.mark.slow
LIMIT, BATCH = 12, 4


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _data(root: Path) -> tuple[Path, Path]:
    domain = []
    for i in range(16):
        a, b = i % 7, (3 * i) % 5
        choices = [str(a + b), str(a + b + 1), str(a + b + 3)]
        domain.append({"prompt": f"{a}+{b}=", "choices": choices, "answer": 0, "answer_text": str(a + b)})
    prefs = [{"prompt": f"The shop opens at {i} am.", "chosen": f" Refunds take {i} days.",
              "rejected": f" {i}+{i}={i}."} for i in range(10)]
    return _write_jsonl(root / "domain.jsonl", domain), _write_jsonl(root / "prefs.jsonl", prefs)


def _lora(base: str, out: Path, *, zero: bool) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    if not zero:  # a "trained" adapter: B != 0 so the adapter changes the outputs
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.5)
    peft.save_pretrained(out / "adapter")
    return out


def _full(base: str, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(2)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(out / "model")
    AutoTokenizer.from_pretrained(base).save_pretrained(out / "model")
    return out


def _runs(base: str, root: Path) -> dict[str, Path]:
    runs = {
        "lora": _lora(base, root / "lora", zero=False),
        "lora-zero": _lora(base, root / "lora-zero", zero=True),
        "full": _full(base, root / "full"),
        "prompt": root / "prompt",
    }
    PromptConfig(base_model=base, format="prompt_completion", k=2, requested_k=2, seed=0,
                 demonstrations=[{"prompt": "1+1=", "completion": "2", "line": 1},
                                 {"prompt": "2+2=", "completion": "4", "line": 2}],
                 prefix="1+1=2\n\n2+2=4\n\n").write(runs["prompt"] / "prompt.json")
    artifacts = {"lora": {"adapter": "adapter"}, "lora-zero": {"adapter": "adapter"},
                 "full": {"model": "model"}, "prompt": {"prompt": "prompt.json"}}
    for name, run_dir in runs.items():
        RunRecord(name=name, method=name.split("-")[0], base_model=base, status="completed",
                  artifacts=artifacts[name]).write(run_dir)
    return runs


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, random_tiny_model_dir):
    """One evaluation of every variant kind; counts model and adapter loads while it runs."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evals.evaluate import evaluate_runs

    root = tmp_path_factory.mktemp("eval")
    base = str(random_tiny_model_dir)
    domain, prefs = _data(root)
    runs = _runs(base, root / "runs")
    loads: dict[str, list] = {"model": [], "peft": [], "load_adapter": []}
    original = (AutoModelForCausalLM.from_pretrained, PeftModel.from_pretrained, PeftModel.load_adapter)

    def load_model(*args, **kwargs):
        loads["model"].append(str(args[0]))
        return original[0](*args, **kwargs)

    def load_peft(*args, **kwargs):
        loads["peft"].append(str(args[1]))
        return original[1](*args, **kwargs)

    def load_adapter(self, *args, **kwargs):
        loads["load_adapter"].append(str(args[0]))
        return original[2](self, *args, **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the cross-check subprocess runs single-threaded too: same float sums
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AutoModelForCausalLM, "from_pretrained", load_model)
        mp.setattr(PeftModel, "from_pretrained", load_peft)
        mp.setattr(PeftModel, "load_adapter", load_adapter)
        record = evaluate_runs([runs[n] for n in ("lora", "lora-zero", "full", "prompt")], domain=domain,
                               preference=prefs, retention="builtin", out=root / "out", limit=LIMIT,
                               batch_size=BATCH, dtype="float32", device="cpu")
    torch.set_num_threads(threads)
    return {"record": record, "out": root / "out", "base": base, "runs": runs, "loads": loads, "domain": domain}


def _scores(record, variant):
    return {s.task: s for s in next(v for v in record.variants if v.name == variant).scores}


def test_every_variant_scored_on_the_same_tasks(evaluated):
    record, out = evaluated["record"], evaluated["out"]
    assert [v.name for v in record.variants] == ["base", "lora", "lora-zero", "full", "prompt"]
    assert [v.method for v in record.variants] == ["base", "lora", "lora", "full", "prompt"]
    tasks = list(_scores(record, "base"))
    assert tasks[:3] == ["tw_domain_domain_mc", "tw_domain_domain_em", "tw_pref_prefs"]
    assert {"tw_arith", "tw_facts"} <= set(tasks)  # the bundled retention suite
    assert record.quick is True and record.settings.limit == LIMIT and record.settings.batch_size == BATCH
    for variant in record.variants:
        assert list(_scores(record, variant.name)) == tasks
        for score in variant.scores:
            rows = read_rows(out / score.samples)
            assert score.n == len(rows) == min(LIMIT, 10 if score.kind == "preference" else LIMIT)
            assert score.score == pytest.approx(sum(r["score"] for r in rows) / len(rows))
    assert load_eval_record(out / "eval.json").to_dict() == record.to_dict()


def test_base_loaded_once_and_adapters_swapped_in_place(evaluated):
    loads, runs = evaluated["loads"], evaluated["runs"]
    assert loads["model"] == [evaluated["base"], str(runs["full"] / "model")]
    assert loads["peft"] == [str(runs["lora"] / "adapter")]
    # PeftModel.from_pretrained loads its first adapter through load_adapter too
    assert loads["load_adapter"] == [str(runs["lora"] / "adapter"), str(runs["lora-zero"] / "adapter")]


def test_each_variant_really_differs_except_the_zero_adapter(evaluated):
    record, out = evaluated["record"], evaluated["out"]

    def lls(variant):
        score = _scores(record, variant)["tw_domain_domain_mc"]
        return [r["lls"] for r in read_rows(out / score.samples)]

    assert lls("lora-zero") == lls("base")
    for variant in ("lora", "full", "prompt"):
        assert lls(variant) != lls("base"), variant
    noop = [w for w in record.warnings if "unchanged" in w or "identical" in w]
    assert len(noop) == 1 and noop[0].startswith("lora-zero:")


def test_prompt_run_prepends_its_demonstrations_and_nothing_else(evaluated):
    record, out = evaluated["record"], evaluated["out"]
    base = read_rows(out / _scores(record, "base")["tw_domain_domain_mc"].samples)
    prompt = read_rows(out / _scores(record, "prompt")["tw_domain_domain_mc"].samples)
    assert [p["prompt"] for p in prompt] == ["1+1=2\n\n2+2=4\n\n" + b["prompt"] for b in base]
    assert [p["doc_hash"] for p in prompt] == [b["doc_hash"] for b in base]


def test_comparisons_are_paired_and_consistent(evaluated):
    record = evaluated["record"]
    tasks = list(_scores(record, "base"))
    assert len(record.comparisons) == 4 * len(tasks)
    for c in record.comparisons:
        base, run = _scores(record, "base")[c.task], _scores(record, c.run)[c.task]
        assert c.base == pytest.approx(base.score) and c.score == pytest.approx(run.score)
        assert c.diff == pytest.approx(run.score - base.score)
        assert c.ci_low <= c.diff <= c.ci_high and c.n == run.n
        assert c.test == "mcnemar" and 0.0 <= c.p_value <= 1.0
        if c.run == "lora-zero":
            assert (c.diff, c.ci_low, c.ci_high, c.verdict) == (0.0, 0.0, 0.0, "no detectable change")


def test_examples_hold_base_and_tuned_generations(evaluated):
    examples = evaluated["record"].examples
    assert len(examples) == 3
    assert set(examples[0]["outputs"]) == {"base", "lora", "lora-zero", "full", "prompt"}
    assert examples[0]["reference"] and examples[0]["prompt"].endswith("=")
    assert examples[0]["outputs"]["lora-zero"] == examples[0]["outputs"]["base"]


def test_adapter_scores_equal_the_lm_eval_command_line(evaluated, tmp_path):
    """CROSS-CHECK: the same adapter through `python -m lm_eval --model hf ... peft=ADAPTER`."""
    record, out, runs = evaluated["record"], evaluated["out"], evaluated["runs"]
    tasks = ["tw_domain_domain_mc", "tw_domain_domain_em", "tw_pref_prefs"]
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
           f"pretrained={evaluated['base']},peft={runs['lora'] / 'adapter'},dtype=float32",
           "--tasks", ",".join(tasks), "--include_path", str(out / "tasks"), "--batch_size", str(BATCH),
           "--device", "cpu", "--limit", str(LIMIT), "--output_path", str(tmp_path), "--log_samples"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [results_file] = tmp_path.rglob("results_*.json")
    theirs = json.loads(results_file.read_text())
    ours = _scores(record, "lora")
    for task in tasks:
        score = ours[task]
        key = f"{score.metric},{'strip' if task.endswith('_em') else 'none'}"
        stderr_key = key.replace(",", "_stderr,")
        assert theirs["results"][task][key] == score.score, task
        assert theirs["results"][task][stderr_key] == score.stderr, task
        assert theirs["versions"][task] == score.version
        [samples_file] = tmp_path.rglob(f"samples_{task}_*.jsonl")
        their_rows = [json.loads(line) for line in samples_file.read_text().splitlines()]
        our_rows = read_rows(out / score.samples)
        assert [(r["doc_id"], r["doc_hash"], r["prompt_hash"], r[score.metric]) for r in their_rows] == \
            [(r["doc_id"], r["doc_hash"], r["prompt_hash"], r["score"]) for r in our_rows]


def test_baseline_reuse_gives_the_same_comparison_without_evaluating_base(evaluated, tmp_path):
    import torch

    from evals.evaluate import evaluate_runs

    record, runs = evaluated["record"], evaluated["runs"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = evaluate_runs([runs["lora"]], domain=evaluated["domain"], retention="none", out=tmp_path,
                              limit=LIMIT, batch_size=BATCH, dtype="float32", device="cpu",
                              baseline=evaluated["out"], examples=0)
    finally:
        torch.set_num_threads(threads)
    tasks = ["tw_domain_domain_mc", "tw_domain_domain_em"]
    assert list(_scores(again, "base")) == tasks
    for task in tasks:
        assert _scores(again, "base")[task].score == _scores(record, "base")[task].score
        assert (tmp_path / _scores(again, "base")[task].samples).is_file()  # copied: the folder stands alone
    old = {(c.run, c.task): c for c in record.comparisons}
    for c in again.comparisons:
        assert c == old[(c.run, c.task)]
