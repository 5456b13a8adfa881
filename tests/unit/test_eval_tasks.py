"""lm-eval task configs generated from held-out data (no torch, no lm-eval).

    .venv/bin/python -m pytest tests/unit/test_eval_tasks.py
"""

import json
from pathlib import Path

import pytest

from evals.tasks import build_data_tasks
from tunewise.errors import InputError
from tunewise.schema import read_yaml


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


MC = [{"question": f"What is {i}+1?", "choices": [str(i + 1), str(i + 2)], "answer": 0} for i in range(6)]
PC = [{"prompt": f"<|user|>\nQ{i}</s>\n<|assistant|>\n", "completion": f" A{i}. "} for i in range(6)]
PREF = [{"prompt": f"P{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(4)]


def _load(spec):
    config = read_yaml(spec.yaml_path)  # duplicate keys rejected
    rows = [json.loads(line) for line in Path(config["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    return config, rows


def test_multiple_choice_data_becomes_loglikelihood_task(tmp_path):
    [spec] = build_data_tasks(_write(tmp_path / "Support QA.jsonl", MC), tmp_path / "tasks")
    config, rows = _load(spec)
    assert spec.name == "tw_domain_support_qa_mc" and spec.kind == "domain" and spec.metric == "acc"
    assert config["output_type"] == "multiple_choice"
    assert (config["doc_to_text"], config["doc_to_choice"], config["doc_to_target"]) == ("query", "choices", "gold")
    assert config["target_delimiter"] == " "  # questions do not end in whitespace
    assert rows[0] == {"query": "What is 0+1?", "choices": ["1", "2"], "gold": 0}
    assert Path(config["dataset_kwargs"]["data_files"]["test"]).is_absolute()
    assert config["metadata"]["version"] == spec.version and spec.n_docs == 6


def test_prompt_completion_becomes_exact_match_generation(tmp_path):
    [spec] = build_data_tasks(_write(tmp_path / "pc.jsonl", PC), tmp_path / "tasks")
    config, rows = _load(spec)
    assert spec.name == "tw_domain_pc_em" and spec.metric == "exact_match" and spec.filter == "strip"
    assert config["output_type"] == "generate_until"
    assert config["generation_kwargs"]["until"] == ["\n"] and config["generation_kwargs"]["do_sample"] is False
    assert config["target_delimiter"] == ""  # chat-rendered prompts end with a newline: add nothing
    assert rows[0] == {"query": PC[0]["prompt"], "target": "A0."}  # targets stripped, like the generations
    assert [f["function"] for f in config["filter_list"][0]["filter"]] == ["remove_whitespace", "take_first"]


def test_row_with_choices_and_answer_text_gives_both_tasks(tmp_path):
    rows = [{"prompt": "Q: 2+2=", "choices": ["4", "5"], "answer": "4", "answer_text": "4"}] * 3
    specs = build_data_tasks(_write(tmp_path / "d.jsonl", rows), tmp_path / "tasks")
    assert [s.name for s in specs] == ["tw_domain_d_mc", "tw_domain_d_em"]
    assert _load(specs[0])[1][0]["gold"] == 0  # answer given as the choice's text


def test_messages_rendered_up_to_the_last_assistant_turn(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello!"}]}]
    seen = []

    def render(messages):
        seen.append(messages)
        return "|".join(m["content"] for m in messages) + "\n"

    [spec] = build_data_tasks(_write(tmp_path / "m.jsonl", rows), tmp_path / "tasks", render=render)
    assert seen == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]]
    assert _load(spec)[1] == [{"query": "Be brief.|Hi\n", "target": "Hello!"}]


def test_chat_template_mode_flattens_messages_into_one_turn(tmp_path):
    from evals.eval_data import content_render

    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                          {"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Bye!"}]}]
    [spec] = build_data_tasks(_write(tmp_path / "m.jsonl", rows), tmp_path / "t", render=content_render)
    assert _load(spec)[1] == [{"query": "Hi\n\nHello\n\nBye?", "target": "Bye!"}]


def test_preference_pairs_become_chosen_vs_rejected_choice(tmp_path):
    [spec] = build_data_tasks(_write(tmp_path / "prefs.jsonl", PREF), tmp_path / "tasks", preference=True)
    config, rows = _load(spec)
    assert spec.name == "tw_pref_prefs" and spec.kind == "preference" and spec.metric == "acc"
    assert config["output_type"] == "multiple_choice"
    assert rows[1] == {"query": "P1", "choices": ["good 1", "bad 1"], "gold": 0}


def test_preference_with_message_lists(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "Q"}],
             "chosen": [{"role": "assistant", "content": "yes"}],
             "rejected": [{"role": "assistant", "content": "no"}]}]
    [spec] = build_data_tasks(_write(tmp_path / "p.jsonl", rows), tmp_path / "t", preference=True,
                              render=lambda m: m[0]["content"] + ":")
    assert _load(spec)[1] == [{"query": "Q:", "choices": ["yes", "no"], "gold": 0}]


@pytest.mark.parametrize(
    "rows,preference,line,field",
    [
        ([MC[0], {"question": "x", "choices": ["a", "b"]}], False, 2, "answer"),
        ([MC[0], {"question": "x", "choices": ["a", "b"], "answer": 5}], False, 2, "answer"),
        ([MC[0], {"question": "x", "choices": ["a"], "answer": 0}], False, 2, "choices"),
        ([MC[0], {"choices": ["a", "b"], "answer": 0}], False, 2, "prompt"),
        ([PC[0], PC[1], {"prompt": "p"}], False, 3, "completion"),
        ([{"text": "free text"}], False, 1, "choices"),
        ([PREF[0], {"prompt": "p", "chosen": "c"}], True, 2, "rejected"),
        ([{"prompt": "p", "completion": "c"}], True, 1, "chosen"),
    ],
)
def test_missing_fields_name_file_line_and_field(tmp_path, rows, preference, line, field):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as info:
        build_data_tasks(path, tmp_path / "tasks", preference=preference)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert str(err).startswith(f"{path}:{line} field '{field}': ")


def test_version_changes_when_data_changes_and_only_then(tmp_path):
    path = _write(tmp_path / "d.jsonl", MC)
    v1 = build_data_tasks(path, tmp_path / "a")[0].version
    assert build_data_tasks(path, tmp_path / "b")[0].version == v1  # same data, other folder: same version
    _write(path, MC[:-1] + [dict(MC[-1], answer=1)])
    assert build_data_tasks(path, tmp_path / "c")[0].version != v1


def test_fewshot_examples_come_from_a_separate_split(tmp_path):
    [spec] = build_data_tasks(_write(tmp_path / "d.jsonl", MC), tmp_path / "tasks", num_fewshot=2)
    config, test = _load(spec)
    dev = [json.loads(x) for x in Path(config["dataset_kwargs"]["data_files"]["dev"]).read_text().splitlines()]
    assert config["fewshot_split"] == "dev" and config["num_fewshot"] == 2
    assert config["fewshot_config"] == {"sampler": "first_n"}
    assert len(dev) == 2 and len(test) == 4 and spec.n_docs == 4
    assert not {r["query"] for r in dev} & {r["query"] for r in test}  # no item sees its own answer
    zero = build_data_tasks(tmp_path / "d.jsonl", tmp_path / "zero")[0]
    assert zero.version != spec.version  # different split, never compared
    with pytest.raises(InputError, match="nothing to evaluate"):
        build_data_tasks(tmp_path / "d.jsonl", tmp_path / "x", num_fewshot=6)


def test_two_files_with_one_stem_get_unique_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    taken = set()
    one = build_data_tasks(_write(tmp_path / "a" / "eval.jsonl", MC), tmp_path / "t", taken=taken)
    two = build_data_tasks(_write(tmp_path / "b" / "eval.jsonl", MC), tmp_path / "t", taken=taken)
    assert [one[0].name, two[0].name] == ["tw_domain_eval_mc", "tw_domain_eval_mc_2"]
    assert one[0].yaml_path != two[0].yaml_path
