"""Reading lm-eval results into TaskScores, run folders into variants, baselines (no torch).

    .venv/bin/python -m pytest tests/unit/test_eval_records.py
"""

import pytest

from evals.baseline import baseline_results, load_baseline
from evals.retention import resolve_retention
from evals.samples import extract, sample_row, write_rows
from evals.tasks import TaskSpec
from evals.variants import resolve_runs
from tunewise.errors import InputError
from tunewise.records import EvalRecord, EvalSettings, RunRecord, TaskScore, Variant


def _mc_sample(doc_id, lls, target, acc, filt="none"):
    return {"doc_id": doc_id, "doc_hash": f"d{doc_id}", "prompt_hash": "p", "target_hash": "t", "filter": filt,
            "arguments": [("Q?", " a"), ("Q?", " b")], "filtered_resps": [(ll, False) for ll in lls],
            "target": target, "acc": acc, "acc_norm": acc}


def _results():
    leaf = {"acc,none": 0.5, "acc_stderr,none": 0.5}
    return {
        "results": {
            "t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.25, "acc_norm,none": 0.75,
                  "acc_norm_stderr,none": "N/A", "perplexity,none": 3.0},
            "g": {"acc,none": 0.6, "acc_stderr,none": 0.1}, "g_a": leaf, "g_b": leaf,
        },
        "group_subtasks": {"g": ["g_a", "g_b"], "g_a": [], "g_b": []},
        "versions": {"t": "v1", "g": 1.0, "g_a": 2.0, "g_b": 2.0},
        "n-shot": {"t": 0, "g_a": 5, "g_b": 5},
        "higher_is_better": {"t": {"acc": True, "acc_norm": True, "perplexity": False}, "g_a": {"acc": True}},
        "n-samples": {"t": {"original": 9, "effective": 2}, "g_a": {"effective": 2}, "g_b": {"effective": 3}},
        "configs": {"t": {"metadata": {"version": "v1"}}},
        "samples": {
            "t": [_mc_sample(0, [-1.0, -2.0], 0, 1.0), _mc_sample(1, [-1.0, -0.5], 0, 0.0),
                  _mc_sample(1, [-1.0, -0.5], 0, 0.0, filt="other")],
            "g_a": [_mc_sample(i, [-1.0, -2.0], 0, 1.0) for i in range(2)],
            "g_b": [_mc_sample(i, [-1.0, -2.0], 1, 0.0) for i in range(3)],
        },
    }


def test_scores_come_from_lm_eval_keys():
    [score_t] = [r.score for r in extract(_results(), [TaskSpec("t", "domain", "acc")])]
    assert (score_t.metric, score_t.score, score_t.stderr, score_t.n) == ("acc", 0.5, 0.25, 2)
    assert (score_t.version, score_t.num_fewshot, score_t.higher_is_better) == ("v1", 0, True)
    [norm] = extract(_results(), [TaskSpec("t", "domain", "acc_norm")])
    assert norm.score.score == 0.75 and norm.score.stderr is None  # lm-eval's "N/A"
    [ppl] = extract(_results(), [TaskSpec("t", "retention", "perplexity")])
    assert ppl.score.higher_is_better is False  # direction from lm-eval's higher_is_better


def test_rows_keep_pairing_keys_for_the_headline_filter_only():
    [result] = extract(_results(), [TaskSpec("t", "domain", "acc")])
    assert [r["doc_id"] for r in result.rows] == [0, 1]
    row = result.rows[1]
    assert (row["doc_hash"], row["prompt_hash"], row["score"]) == ("d1", "p", 0.0)
    assert row["lls"] == [-1.0, -0.5] and row["response"] == "b" and row["target"] == "a"
    assert row["prompt"] == "Q?"


def test_groups_pool_their_subtasks():
    [group] = extract(_results(), [TaskSpec("g", "retention", "", filter="")])
    assert group.score.score == 0.6 and group.score.n == 5 and group.score.num_fewshot == 5
    assert [r["doc_id"] for r in group.rows] == ["g_a/0", "g_a/1", "g_b/0", "g_b/1", "g_b/2"]


def test_headline_metric_of_retention_tasks():
    results = _results()
    results["results"]["hellaswag"] = results["results"].pop("t")
    results["higher_is_better"]["hellaswag"] = {"acc_norm": True}
    results["n-samples"]["hellaswag"] = {"effective": 2}
    [result] = extract(results, [TaskSpec("hellaswag", "retention", "", filter="")])
    assert result.score.metric == "acc_norm"  # eval_notes 2.6 convention, not the first listed
    results["configs"]["hellaswag"] = {"metadata": {"tunewise_metric": "perplexity"}}
    assert extract(results, [TaskSpec("hellaswag", "retention", "", filter="")])[0].score.metric == "perplexity"


def test_generation_row():
    sample = {"doc_id": 3, "arguments": [("Say hi:", {"until": ["\n"]})], "filtered_resps": ["hello"],
              "target": "hello", "exact_match": 1.0, "doc_hash": "h", "prompt_hash": "p"}
    row = sample_row(sample, "exact_match")
    assert row["response"] == "hello" and row["score"] == 1.0 and "lls" not in row and row["prompt"] == "Say hi:"


def _run(root, name, *, base="base-model", status="completed", artifacts=None, make=True):
    run_dir = root / name
    if make and artifacts is None:
        (run_dir / "adapter").mkdir(parents=True)
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
        artifacts = {"adapter": "adapter"}
    RunRecord(name=name, method="lora", base_model=base, status=status, artifacts=artifacts or {}).write(run_dir)
    return run_dir


def test_resolve_runs_lists_base_then_runs(tmp_path):
    a, b = _run(tmp_path, "lora"), _run(tmp_path / "x", "lora")
    resolved = resolve_runs([a, b])
    assert [v.name for v in resolved.variants] == ["base", "lora", "lora-2"]
    assert resolved.base_model == "base-model" and resolved.variants[1].kind == "adapter"
    overridden = resolve_runs([a], base="elsewhere")
    assert overridden.base_model == "elsewhere" and "--base elsewhere" in overridden.warnings[0]


def test_resolve_runs_refuses_bad_run_folders(tmp_path):
    with pytest.raises(InputError, match="no record.json"):
        resolve_runs([tmp_path / "nothing"])
    with pytest.raises(InputError, match="different base models"):
        resolve_runs([_run(tmp_path, "a"), _run(tmp_path, "b", base="other")])
    with pytest.raises(InputError, match="is failed, not completed"):
        resolve_runs([_run(tmp_path, "c", status="failed")])
    with pytest.raises(InputError, match="no adapter, model or prompt"):
        resolve_runs([_run(tmp_path, "d", artifacts={"metrics": "metrics.jsonl"})])
    with pytest.raises(InputError, match="has no adapter_config.json"):
        resolve_runs([_run(tmp_path, "e", artifacts={"adapter": "missing"})])


def test_retention_items():
    assert resolve_retention("none").specs == []
    mixed = resolve_retention("builtin, hellaswag,builtin")
    assert mixed.builtin is True and mixed.specs[-1].name == "hellaswag"
    assert len(mixed.include_paths) == 1  # the bundled suite once
    assert len({s.name for s in mixed.specs}) == len(mixed.specs)


def _settings(**kw):
    return EvalSettings(**(dict(batch_size=8, dtype="float32", limit=None, num_fewshot=None, device="cpu",
                                bootstrap_iters=100000) | kw))


def _baseline(tmp_path, settings):
    write_rows(tmp_path / "samples" / "base" / "t.jsonl", [{"doc_id": 0, "doc_hash": "h", "score": 1.0}])
    score = TaskScore("t", "acc", 1.0, 0.0, 1, "v1", 0, samples="samples/base/t.jsonl")
    EvalRecord(base_model="m", settings=settings, variants=[Variant("base", "base", None, [score])]).write(
        tmp_path / "eval.json")
    return tmp_path


def test_baseline_reused_only_with_identical_settings_and_versions(tmp_path):
    folder = _baseline(tmp_path, _settings())
    spec = TaskSpec("t", "domain", "acc", version="v1")
    baseline = load_baseline(folder, _settings(device="cuda"), "m", [spec])
    [result] = baseline_results(baseline, [spec])
    assert result.rows == [{"doc_id": 0, "doc_hash": "h", "score": 1.0}] and result.score.version == "v1"
    with pytest.raises(InputError, match="batch_size differs"):
        load_baseline(folder, _settings(batch_size=4), "m", [spec])
    with pytest.raises(InputError, match="version differs"):
        load_baseline(folder, _settings(), "m", [TaskSpec("t", "domain", "acc", version="v2")])
    with pytest.raises(InputError, match="not other"):
        load_baseline(folder, _settings(), "other", [spec])
