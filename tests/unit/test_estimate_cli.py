"""`tunewise estimate`: the JSON contract, the human table, and one-line errors (exit 2).

    .venv/bin/python -m pytest tests/unit/test_estimate_cli.py
"""

import json

import pytest
from click.testing import CliRunner

from tunewise.cli import cli

CONTRACT_KEYS = {"schema", "tunewise_version", "model", "method", "hardware", "settings", "trainable_params",
                 "memory_gib", "fits", "supported", "reason", "tokens", "time_hours", "cost_usd",
                 "assumptions", "warnings"}


def invoke(*args):
    return CliRunner().invoke(cli, ["estimate", *args])


def as_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_is_the_estimate_contract():
    d = as_json("--model", "meta-llama/Llama-2-7b-hf", "--method", "lora", "--lora-rank", "8",
                "--lora-targets", "q_proj,v_proj", "--gpu", "a100-80gb", "--tokens", "1000000")
    assert set(d) == CONTRACT_KEYS
    assert d["schema"] == "tunewise/estimate/v1"
    assert d["model"] == {"name": "meta-llama/Llama-2-7b-hf", "params": 6_738_415_616, "source": "catalog"}
    assert d["hardware"] == {"name": "a100-80gb", "count": 1, "memory_gib": 80.0}
    assert set(d["settings"]) == {"batch_size", "seq_len", "gradient_checkpointing", "lora_rank", "lora_targets",
                                  "optimizer", "precision", "zero_stage"}
    assert d["trainable_params"] == 4_194_304
    mem = d["memory_gib"]
    assert set(mem) == {"weights", "gradients", "optimizer", "activations", "adapter", "overhead", "total"}
    assert mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"))
    assert d["fits"] is True and d["tokens"] == 1_000_000 and d["time_hours"] > 0
    assert d["cost_usd"] == pytest.approx(d["time_hours"] * 2.45, rel=0.01, abs=1e-3)
    assert any("MFU" in a for a in d["assumptions"])


def test_flags_reach_the_estimate():
    base = as_json("--model", "gpt2", "--method", "full", "--gpu", "rtx-4090", "--gpus", "4")
    sharded = as_json("--model", "gpt2", "--method", "full", "--gpu", "rtx-4090", "--gpus", "4", "--zero-stage", "3")
    assert sharded["memory_gib"]["weights"] < base["memory_gib"]["weights"]
    priced = as_json("--model", "gpt2", "--gpu", "rtx-4090", "--examples", "1000", "--price", "2.0")
    assert priced["cost_usd"] == pytest.approx(priced["time_hours"] * 2.0, rel=0.01, abs=1e-3)
    no_gc = as_json("--model", "gpt2", "--gpu", "rtx-4090", "--no-gradient-checkpointing", "--optimizer", "sgd",
                    "--precision", "fp32", "--batch-size", "2", "--seq-len", "512")
    assert no_gc["settings"] | {} == {**no_gc["settings"], "gradient_checkpointing": False, "optimizer": "sgd",
                                     "precision": "fp32", "batch_size": 2, "seq_len": 512}


def test_human_table_by_default():
    result = invoke("--model", "meta-llama/Llama-2-7b-hf", "--method", "full", "--gpu", "rtx-4090")
    assert result.exit_code == 0
    assert "memory per device (GiB)" in result.output and "does NOT fit" in result.output


def test_sequence_beyond_the_model_maximum_is_a_warning():
    d = as_json("--model", "gpt2", "--seq-len", "4096", "--gpu", "rtx-4090")
    assert any("maximum context of 1024" in w for w in d["warnings"])


@pytest.mark.parametrize("args,needle", [
    (("--model", "no-such/model"), "unknown model"),
    (("--model", "gpt2", "--gpu", "tpu-v9"), "--gpu-mem-gib"),
    (("--model", "gpt2", "--batch-size", "0"), "batch_size"),
    (("--model", "gpt2", "--seq-len", "-5"), "seq_len"),
    (("--model", "gpt2", "--gpus", "0"), "gpus"),
    (("--model", "gpt2", "--tokens", "-1"), "tokens"),
    (("--model", "gpt2", "--zero-stage", "5"), "zero_stage"),
    (("--model", "gpt2", "--gpu", "rtx-4090", "--gpu-mem-gib", "-1"), "gpu_mem_gib"),
    (("--model", "gpt2", "--lora-targets", "nothing_here"), "lora_targets"),
    (("--model", "gpt2", "--examples", "10", "--tokens-per-example", "nan"), "avg_tokens_per_example"),
    (("--model", "gpt2", "--examples", "10", "--tokens-per-example", "inf"), "avg_tokens_per_example"),
    (("--model", "gpt2", "--gpu", "rtx-4090", "--examples", "10", "--price", "inf"), "price"),
    (("--model", "gpt2", "--gpu", "rtx-4090", "--examples", "10", "--price", "nan"), "price"),
    (("--model", "gpt2", "--gpu", "foo", "--gpu-mem-gib", "inf"), "gpu_mem_gib"),
    (("--model", "gpt2", "--gpu", "foo", "--gpu-mem-gib", "nan"), "gpu_mem_gib"),
    (("--model", "gpt2", "--gpu", "rtx-a1000"), "rtx-a6000"),
    (("--model", "gpt2", "--gpus", "100000000"), "field 'gpus': must be at most 65,536"),
    (("--model", "meta-llama/Llama-3.1-8B", "--lora-rank", "100000000"), "field 'lora_rank'"),
    (("--model", "gpt2", "--examples", "10", "--tokens", "5000000"), "not both"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    result = invoke(*args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_malformed_config_json_names_file_and_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": "wide", "num_hidden_layers": 2}))
    result = invoke("--model", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output and "hidden_size" in result.output


def test_listings():
    models = invoke("--list-models")
    assert models.exit_code == 0 and "meta-llama/Llama-3.1-8B" in models.output
    hardware = invoke("--list-hardware")
    assert hardware.exit_code == 0 and "h100-sxm" in hardware.output


def test_inter_node_choices_are_the_advisors_networks_default_first():
    from advisor.scaleout import DEFAULT_INTER_NODE, INTER_NODE
    from tunewise.cli.estimate import INTER_NODE as CHOICES

    assert set(CHOICES) == set(INTER_NODE)
    assert CHOICES[0] == DEFAULT_INTER_NODE


def test_lora_rank_is_capped_by_the_smallest_targeted_dimension():
    # Llama-3.1-8B: k_proj/v_proj map 4096 -> 1024 (GQA), q_proj/o_proj 4096 -> 4096
    as_json("--model", "meta-llama/Llama-3.1-8B", "--lora-targets", "q_proj,v_proj", "--lora-rank", "1024")
    result = invoke("--model", "meta-llama/Llama-3.1-8B", "--lora-targets", "q_proj,v_proj", "--lora-rank", "1025")
    assert result.exit_code == 2 and "field 'lora_rank'" in result.output and "1,024" in result.output
    as_json("--model", "meta-llama/Llama-3.1-8B", "--lora-targets", "q_proj,o_proj", "--lora-rank", "4096")
    as_json("--model", "meta-llama/Llama-3.1-8B", "--method", "full", "--lora-rank", "100000")  # no adapter


def test_precision_follows_the_device_unless_given():
    t4 = as_json("--model", "meta-llama/Llama-3.1-8B", "--gpu", "t4")
    assert t4["supported"] and t4["settings"]["precision"] == "fp16"
    assert any("precision fp16: the default on t4" in a for a in t4["assumptions"])
    m1 = as_json("--model", "meta-llama/Llama-3.1-8B", "--gpu", "apple-m1-16gb")
    assert m1["supported"] and m1["settings"]["precision"] == "fp16"
    assert as_json("--model", "gpt2", "--gpu", "cpu")["settings"]["precision"] == "fp32"
    assert as_json("--model", "gpt2", "--gpu", "rtx-4090")["settings"]["precision"] == "bf16"
    chosen = as_json("--model", "meta-llama/Llama-3.1-8B", "--gpu", "t4", "--precision", "bf16")
    assert not chosen["supported"] and "bf16" in chosen["reason"]  # what the user asked for, refused
    assert not any(a.startswith("precision ") for a in chosen["assumptions"])


def test_json_never_holds_nan_or_infinity(tmp_path):
    # a finite but absurd peak makes time x price overflow: the JSON says null, not Infinity
    hw = tmp_path / "hw.yaml"
    hw.write_text("hardware: [{name: slow, memory_gib: 80, bf16_tflops: 1.0e-300, usd_per_hour: 1.0e+300}]\n")
    result = invoke("--model", "gpt2", "--gpu", "slow", "--hardware-file", str(hw), "--tokens", "1000000000",
                    "--no-history", "--json")
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    d = json.loads(result.output, parse_constant=refuse)
    assert d["cost_usd"] is None and any("cost_usd overflowed" in w for w in d["warnings"])
    text = invoke("--model", "gpt2", "--gpu", "slow", "--hardware-file", str(hw), "--tokens", "1000000000",
                  "--no-history")
    assert text.exit_code == 0 and "$inf" not in text.output


def test_finite_json_turns_non_finite_floats_into_null():
    from tunewise.cli.estimate import finite_json

    value = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": "inf", "e": 2}
    assert finite_json(value) == {"a": None, "b": [1.5, None, {"c": None}], "d": "inf", "e": 2}
