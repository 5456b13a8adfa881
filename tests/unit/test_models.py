"""Model specs: catalog, config.json resolution, parameter and LoRA counts, bad configs.

    .venv/bin/python -m pytest tests/unit/test_models.py
"""

import json

import pytest

from advisor.lora import plan_adapter
from advisor.models import linear_shapes, load_catalog, resolve_model
from tunewise.errors import InputError, UnknownModelError


def test_catalog_has_at_least_30_models_each_with_a_source():
    entries = load_catalog()
    assert len(entries) >= 30
    assert all(e["source"].startswith("https://huggingface.co/") for e in entries)
    families = {e["config"]["model_type"] for e in entries}
    assert {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "gemma", "gemma2",
            "gemma3_text", "phi3", "gpt2", "gpt_neox", "falcon"} <= families


@pytest.mark.parametrize("model,params", [
    ("meta-llama/Llama-2-7b-hf", 6_738_415_616),
    ("meta-llama/Llama-3.2-3B", 3_212_749_824),  # PEFT MetaMathQA full-FT "trainable" count
    ("mistralai/Mistral-7B-v0.1", 7_241_732_096),
    ("openai-community/gpt2", 124_439_808),
    ("meta-llama/Llama-3.1-8B", 8_030_261_248),
])
def test_published_parameter_counts(model, params):
    assert resolve_model(model).params == params


def test_moe_total_and_active_parameters():
    mixtral = resolve_model("mistralai/Mixtral-8x7B-v0.1")
    assert mixtral.params == 46_702_792_704
    assert mixtral.active_params == 12_879_925_248  # 2 of 8 experts per token
    qwen = resolve_model("Qwen/Qwen3-30B-A3B")
    assert 3.0e9 < qwen.active_params < 3.5e9 < 30e9 < qwen.params


def test_aliases_short_names_and_case_resolve_to_the_same_spec():
    a = resolve_model("meta-llama/Llama-3.1-8B-Instruct")
    b = resolve_model("llama-3.1-8b")
    assert a.name == b.name == "meta-llama/Llama-3.1-8B"


def test_linear_shapes_follow_gqa_and_fused_layouts():
    llama3 = linear_shapes(resolve_model("meta-llama/Llama-3.1-8B"))
    assert llama3["self_attn.q_proj"] == (4096, 4096)
    assert llama3["self_attn.k_proj"] == (4096, 1024)  # 8 KV heads x 128
    assert llama3["mlp.down_proj"] == (14336, 4096)
    phi3 = linear_shapes(resolve_model("microsoft/Phi-3-mini-4k-instruct"))
    assert phi3["self_attn.qkv_proj"] == (3072, 9216) and phi3["mlp.gate_up_proj"] == (3072, 16384)
    assert set(linear_shapes(resolve_model("gpt2"))) == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}


def test_lora_counts_match_published_trainable_parameters():
    assert plan_adapter(resolve_model("meta-llama/Llama-2-7b-hf"), 8, "q_proj,v_proj").trainable_params == 4_194_304
    # PEFT MetaMathQA lora r32 on q,v: "trainable=9,175,040"
    assert plan_adapter(resolve_model("meta-llama/Llama-3.2-3B"), 32, ["q_proj", "v_proj"]).trainable_params == 9_175_040


def test_all_linear_excludes_lm_head_but_lm_head_can_be_named():
    spec = resolve_model("meta-llama/Llama-3.2-1B")
    base = plan_adapter(spec, 8, "all-linear").trainable_params
    names = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    assert plan_adapter(spec, 8, names).trainable_params == base
    assert plan_adapter(spec, 8, names + ",lm_head").trainable_params == base + 8 * (2048 + 128256)


def test_lora_targets_that_match_nothing_are_an_input_error():
    with pytest.raises(InputError, match="q_prj") as exc:
        plan_adapter(resolve_model("gpt2"), 8, "q_prj")
    assert exc.value.field == "lora_targets"


def test_mixtral_fused_experts_need_both_halves():
    with pytest.raises(InputError, match="w3"):
        plan_adapter(resolve_model("mistralai/Mixtral-8x7B-v0.1"), 8, "w1,w2")


def test_config_folder_and_file_resolve(tmp_path):
    config = next(e["config"] for e in load_catalog() if e["id"] == "Qwen/Qwen2.5-0.5B")
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_dir = resolve_model(str(tmp_path))
    from_file = resolve_model(str(tmp_path / "config.json"))
    assert from_dir.params == from_file.params == 494_032_768
    assert from_dir.source == "config"


def test_multimodal_config_uses_its_text_config(tmp_path):
    text = next(e["config"] for e in load_catalog() if e["id"] == "google/gemma-3-4b-pt")
    wrapper = {"model_type": "gemma3", "text_config": {k: v for k, v in text.items() if k != "model_type"}}
    (tmp_path / "config.json").write_text(json.dumps(wrapper))
    assert resolve_model(str(tmp_path)).params == resolve_model("google/gemma-3-4b-pt").params


@pytest.mark.parametrize("body,field", [
    ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
      "vocab_size": 100}, "num_hidden_layers"),
    ({"model_type": "llama", "hidden_size": "64", "num_hidden_layers": 2}, "hidden_size"),
    ({"model_type": "llama", "hidden_size": -64, "num_hidden_layers": 2}, "hidden_size"),
    ({"model_type": "t5", "d_model": 512}, "model_type"),
    ({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "intermediate_size": 128, "vocab_size": 100, "tie_word_embeddings": "yes"}, "tie_word_embeddings"),
    ({"model_type": "llama", "hidden_size": 10**9, "num_hidden_layers": 10**6, "num_attention_heads": 8,
      "intermediate_size": 10**9, "vocab_size": 100}, "hidden_size"),
])
def test_malformed_config_names_the_file_and_field(tmp_path, body, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(body))
    with pytest.raises(InputError) as exc:
        resolve_model(str(path))
    assert exc.value.field == field and exc.value.path == str(path)
    assert "\n" not in str(exc.value)


def test_invalid_json_and_missing_config_are_input_errors(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama",\n "hidden_size": }')
    with pytest.raises(InputError) as exc:
        resolve_model(str(bad))
    assert exc.value.line == 2
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json"):
        resolve_model(str(empty))


def test_unknown_model_suggests_close_catalog_ids():
    with pytest.raises(UnknownModelError, match="did you mean") as exc:
        resolve_model("meta-llama/Llama-3.1-8C")
    assert exc.value.exit_code == 2
