"""`tunewise advise` end to end on the real estimator and catalogs: output, plan, bad input,
and the known facts the policy must agree with.

    .venv/bin/python -m pytest tests/unit/test_advise_cli.py
"""

import json

import pytest
from click.testing import CliRunner

from advisor.advise import AdviceRequest, advise
from tunewise.cli import cli
from tunewise.methods import Method
from tunewise.plan import load_plan

LLAMA7 = "meta-llama/Llama-2-7b-hf"


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def chat_rows(n):
    return [{"messages": [{"role": "user", "content": f"Where is my order number {i}? It was due {i % 9} days ago."},
                          {"role": "assistant", "content": f"Order {i} left warehouse {i % 7}; tracking arrives "
                           "by email within a business day."}]} for i in range(n)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---------------------------------------------------------------- output and plan


def test_json_follows_the_advice_contract(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(50))
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)
    assert advice["schema"] == "tunewise/advice/v1"
    rec = advice["recommendation"]
    assert rec["method"] == "prompt" and rec["reasons"] and "num_fewshot" in rec["hyperparameters"]
    assert [c["method"] for c in advice["candidates"]] == [m.value for m in Method]
    for cand in advice["candidates"]:
        assert cand["schema"] == "tunewise/estimate/v1" and cand["verdict"]
        parts = {k: v for k, v in cand["memory_gib"].items() if k != "total"}
        assert sum(parts.values()) == pytest.approx(cand["memory_gib"]["total"], abs=0.05)
    assert advice["data"]["examples"] == 50 and advice["data"]["format"] == "messages"
    assert advice["plan"] is None


def test_human_output_table_reasons_and_derivations(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(500))
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", "--data", data, "--lora-rank", "32")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "method" in out and "GiB/device" in out and "verdict" in out
    for method in Method:
        assert f"\n{method.value} " in out
    assert "Recommendation:" in out and "recommended" in out
    assert "[override] you set it" in out  # --lora-rank 32
    for field in ("seq_len", "batch_size", "grad_accum", "learning_rate", "precision", "epochs", "optimizer"):
        assert f"  {field} " in out


def test_out_writes_a_plan_that_run_can_load(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(500))
    plan_path = tmp_path / "plans" / "plan.yaml"
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", "--data", data, "--out", str(plan_path))
    assert result.exit_code == 0, result.output
    plan = load_plan(plan_path)
    assert plan.method in (Method.LORA, Method.QLORA)
    assert plan.data.train == str((tmp_path / "train.jsonl").resolve())  # stored relative, resolved on load
    assert plan.estimate["method"] == plan.method.value and plan.reasons
    assert f"Plan written to {plan_path}" in result.stdout


# ---------------------------------------------------------------- bad input: one line, exit 2


@pytest.mark.parametrize(("content", "expect"), [
    ('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n', ":2: invalid JSON"),
    ('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n', ":2 field 'completion': missing"),
    ('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": 7}\n', ":2 field 'completion': expected a string"),
])
def test_malformed_data_names_file_line_and_field(tmp_path, content, expect):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", "--data", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}{expect}"), lines


@pytest.mark.parametrize(("args", "expect"), [
    (["--gpu", "quantum-9000"], "--gpu-mem-gib"),
    (["--model", "nobody/no-such-model"], "nobody/no-such-model"),
    (["--gpus", "0"], "field 'gpus': must be positive"),
    (["--data", "does-not-exist.jsonl"], "does-not-exist.jsonl: file not found"),
    (["--method", "dpo", "--data", "SFT"], "--method dpo needs prompt/chosen/rejected pairs"),
    (["--seq-len", "-5"], "field 'seq_len': must be positive"),
    (["--model", "BADCONFIG"], "config.json"),
    (["--gpus", "2", "--strategy", "ddp", "--zero-stage", "3"], "zero_stage 3 with strategy ddp"),
    (["--examples", "10", "--tokens-per-example", "inf"], "must be a positive finite number"),
    (["--lora-rank", "100000000"], "field 'lora_rank': 100,000,000 exceeds"),
    (["--method", "lora", "--data", "PREF"], "this file is preference pairs"),
    (["--gpu", "cpu", "--precision", "fp16", "--data", "SFT", "--out", "PLAN"], "plan not written"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expect):
    sft = write_jsonl(tmp_path / "sft.jsonl", chat_rows(200))
    pref = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad"}
                                                 for i in range(200)])
    plan = tmp_path / "plan.yaml"
    bad_config = tmp_path / "broken" / "config.json"
    bad_config.parent.mkdir()
    bad_config.write_text('{"model_type": "llama", "hidden_size": ')
    args = [{"SFT": sft, "PREF": pref, "PLAN": str(plan), "BADCONFIG": str(bad_config)}.get(a, a) for a in args]
    base = {"--model": LLAMA7, "--gpu": "rtx-4090"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = invoke("advise", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expect in lines[0], lines
    assert not plan.exists()


@pytest.mark.parametrize("out, expect", [
    ("FILE/plan.yaml", "a file is in the way where a folder is needed"),
    ("", "an empty path"),
])
def test_an_output_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, out, expect):
    (tmp_path / "FILE").write_text("x")
    out = out.replace("FILE", str(tmp_path / "FILE"))
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", "--out", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in result.stderr, lines


def test_an_unwritable_folder_names_the_folder_not_the_temporary_file(tmp_path, monkeypatch):
    import tunewise.cli as cli_module

    err = PermissionError(13, "Permission denied", str(tmp_path / "ro" / ".plan.yaml.abc123.tmp"))
    assert cli_module.os_error_line(err) == f"cannot write into {tmp_path / 'ro'}: Permission denied"


@pytest.mark.parametrize("flag", ["--probe", "--probe-data"])
def test_a_probe_without_data_is_refused_before_any_advice_or_plan(tmp_path, flag):
    plan = tmp_path / "plan.yaml"
    result = invoke("advise", "--model", LLAMA7, "--gpu", "rtx-4090", flag, "--out", str(plan))
    assert result.exit_code == 2 and f"{flag} trains on your data: pass --data" in result.stderr
    assert result.stdout == "" and not plan.exists()


# ---------------------------------------------------------------- known facts (real estimator)


def _advise(**kw):
    return advise(AdviceRequest(**kw))


def test_fact_50_examples_prompt(tmp_path):
    a = _advise(model=LLAMA7, gpu="rtx-4090", data=write_jsonl(tmp_path / "d.jsonl", chat_rows(50)))
    assert a.method is Method.PROMPT


def test_fact_500_chat_examples_7b_on_24gb_lora_or_qlora_explained(tmp_path):
    a = _advise(model=LLAMA7, gpu="rtx-4090", data=write_jsonl(tmp_path / "d.jsonl", chat_rows(500)))
    assert a.method in (Method.LORA, Method.QLORA)
    assert a.candidates[Method.QLORA].fits
    assert not a.candidates[Method.FULL].fits  # a 24 GB card does not fully fine-tune a 7B model
    assert "QLoRA" in a.reasons[0] and "LoRA" in a.reasons[0]


def test_fact_50k_examples_budget_and_8x80gb_full():
    a = _advise(model="meta-llama/Llama-3.1-8B", gpu="a100-80gb", gpus=8, examples=50_000,
                tokens_per_example=600, budget_usd=5_000)
    assert a.method is Method.FULL and a.rule == "large-data-full"
    assert any("forgetting" in n for n in a.notes)


def test_fact_preference_data_dpo(tmp_path):
    rows = [{"prompt": f"Customer {i} asks about a late parcel.", "chosen": f"Sorry, parcel {i} is on its way.",
             "rejected": f"Not my problem {i}."} for i in range(600)]
    a = _advise(model="Qwen/Qwen2.5-1.5B", gpu="a100-80gb", data=write_jsonl(tmp_path / "p.jsonl", rows))
    assert a.method is Method.DPO


def test_fact_ten_tasks_lora_adapters(tmp_path):
    a = _advise(model=LLAMA7, gpu="a100-80gb", tasks=10, data=write_jsonl(tmp_path / "d.jsonl", chat_rows(2_000)))
    assert a.method in (Method.LORA, Method.QLORA) and a.rule == "many-tasks"


def test_fact_full_that_does_not_fit_gets_the_cheapest_changes(tmp_path):
    a = _advise(model=LLAMA7, gpu="rtx-4090", method=Method.FULL, data=write_jsonl(tmp_path / "d.jsonl", chat_rows(500)))
    assert a.method is Method.FULL and not a.chosen.fits
    fixes = a.fixes[Method.FULL]
    assert fixes and all(f["fits"] for f in fixes)
    assert any(f["method"] == "qlora" for f in fixes)
    assert a.to_dict()["recommendation"]["fixes"] == fixes


def test_fact_16gb_laptop_without_gpu_cannot_fine_tune_7b():
    a = _advise(model=LLAMA7, gpu="cpu", gpu_mem_gib=16, examples=1_000, tokens_per_example=400)
    assert not a.candidates[Method.LORA].fits and not a.candidates[Method.FULL].fits
    # a 4-bit base squeezes into 16 GB of RAM, but days of CPU training are no plan: nothing
    # is recommended outright; the closest method is the one that at least fits in memory
    qlora = a.candidates[Method.QLORA]
    assert a.rule == "nothing-fits"
    if qlora.fits:  # it must say what would make it possible
        assert a.method is Method.QLORA and "over the 72 h limit" in qlora.verdict_reason
        assert "a smaller model makes it a plan" in a.reasons[0]
    else:
        assert a.fixes[a.method], "it must say what would make it possible (e.g. a smaller model)"


def test_fact_qlora_65b_in_48gb_with_paged_optimizer():
    a = _advise(model="huggyllama/llama-65b", gpu="rtx-a6000", examples=1_000, tokens_per_example=400)
    assert a.method is Method.QLORA and a.chosen.fits
    assert a.chosen.settings.optimizer == "paged-adamw-8bit"


def test_exact_token_counts_from_a_local_model_folder(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100,
        "max_position_embeddings": 512, "tie_word_embeddings": False}))
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "order": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "order " * (i % 7 + 3)} for i in range(200)])
    result = invoke("advise", "--model", str(folder), "--gpu", "cpu", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    tokens = json.loads(result.stdout)["data"]["tokens"]
    assert tokens["method"] == "exact" and str(folder / "tokenizer.json") in tokens["how"]
    assert (tokens["p50"], tokens["max"]) == (6, 9)  # words per row: 3..9


def test_preserve_general_and_data_findings_reach_plan_and_output(tmp_path):
    rows = chat_rows(300)
    rows[7] = dict(rows[3])  # an exact duplicate
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    held_out = write_jsonl(tmp_path / "eval.jsonl", [rows[11], rows[12]])
    plan_path = tmp_path / "plan.yaml"
    result = invoke("advise", "--model", "Qwen/Qwen2.5-0.5B", "--gpu", "a100-80gb", "--data", data,
                    "--eval-data", held_out, "--preserve-general", "--out", str(plan_path))
    assert result.exit_code == 0, result.output
    plan = load_plan(plan_path)
    assert plan.method is Method.LORA and plan.settings.replay == 0.05 and plan.settings.learning_rate == 1e-4
    assert "[preserve-general]" in result.stdout and "[lora-preserve]" in result.stdout
    assert "exact duplicate row(s); first group at lines [4, 8]" in result.stdout
    assert "train/eval overlap: 2 identical" in result.stdout


def test_fact_24gb_card_qlora_for_13b_not_lora_or_full():
    a = _advise(model="meta-llama/Llama-2-13b-hf", gpu="rtx-4090", examples=500, tokens_per_example=1024)
    assert a.method is Method.QLORA and a.rule == "qlora-when-tight"
    assert not a.candidates[Method.LORA].fits and not a.candidates[Method.FULL].fits


def test_a_plan_keeps_a_local_model_folder_relative_to_itself(tmp_path, monkeypatch):
    import shutil

    from tunewise.assets import tiny_model_path

    shutil.copytree(tiny_model_path(), tmp_path / "my-model")
    monkeypatch.chdir(tmp_path)
    result = invoke("advise", "--model", "my-model", "--gpu", "cpu", "--examples", "200", "--out", "plans/p.yaml")
    assert result.exit_code == 0, result.output
    assert "model: ../my-model" in (tmp_path / "plans" / "p.yaml").read_text()
    monkeypatch.chdir(tmp_path / "plans")  # run from anywhere: the folder resolves against the plan
    assert load_plan(tmp_path / "plans" / "p.yaml").model == str((tmp_path / "my-model").resolve())
