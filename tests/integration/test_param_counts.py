"""The advisor's parameter arithmetic equals transformers and PEFT, exactly.

Every catalog entry is built with transformers on the meta device (no memory, no download)
and its `sum(p.numel())` compared with `ModelSpec.params`; MoE active parameters are
checked against the expert tensors.  LoRA trainable counts are compared with
`get_peft_model` for several models and target sets.

    .venv/bin/python -m pytest tests/integration/test_param_counts.py
"""

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from advisor.lora import plan_adapter  # noqa: E402
from advisor.models import load_catalog, resolve_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


def _meta_model(config: dict):
    cfg = dict(config)
    model_type = cfg.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(hf_config)


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("entry", load_catalog(), ids=lambda e: e["id"])
def test_catalog_params_equal_transformers(entry):
    spec = resolve_model(entry["id"])
    model = _meta_model(entry["config"])
    assert spec.params == _numel(model)
    if spec.is_moe:
        expert_params = sum(
            p.numel() for n, p in model.named_parameters() if ".experts." in n and "shared" not in n
        )
        per_expert = expert_params // (spec.n_experts * spec.sparse_layers)
        inactive = (spec.n_experts - spec.experts_per_token) * spec.sparse_layers * per_expert
        assert spec.active_params == spec.params - inactive
    else:
        assert spec.active_params == spec.params


def test_config_folder_matches_catalog(tmp_path):
    entry = next(e for e in load_catalog() if e["id"] == "Qwen/Qwen2.5-0.5B")
    (tmp_path / "config.json").write_text(json.dumps(entry["config"]))
    assert resolve_model(str(tmp_path)).params == resolve_model("Qwen/Qwen2.5-0.5B").params


LORA_CASES = [
    ("meta-llama/Llama-2-7b-hf", 8, ["q_proj", "v_proj"]),
    ("meta-llama/Llama-3.2-3B", 32, ["q_proj", "v_proj"]),
    ("meta-llama/Llama-3.2-1B", 16, "all-linear"),
    ("Qwen/Qwen2.5-0.5B", 8, "all-linear"),
    ("Qwen/Qwen3-0.6B", 4, ["q_proj", "k_proj", "v_proj", "o_proj", "lm_head"]),
    ("google/gemma-2-2b", 16, ["gate_proj", "up_proj", "down_proj"]),
    ("microsoft/Phi-3-mini-4k-instruct", 8, "all-linear"),
    ("microsoft/Phi-3-mini-4k-instruct", 8, ["qkv_proj"]),
    ("openai-community/gpt2", 8, ["c_attn"]),
    ("openai-community/gpt2", 4, ["c_proj"]),  # matches attn.c_proj and mlp.c_proj
    ("openai-community/gpt2", 8, "all-linear"),
    ("EleutherAI/pythia-160m", 8, "all-linear"),
    ("tiiuae/falcon-7b", 8, ["query_key_value"]),
    ("bigscience/bloom-560m", 8, "all-linear"),
    ("meta-llama/Llama-3.2-1B", 8, ["q_proj", "embed_tokens"]),
    ("mistralai/Mixtral-8x7B-v0.1", 8, "all-linear"),
    ("mistralai/Mixtral-8x7B-v0.1", 8, ["q_proj", "v_proj"]),
    ("mistralai/Mixtral-8x7B-v0.1", 4, ["w1", "w3", "w2"]),
    ("Qwen/Qwen3-30B-A3B", 8, "all-linear"),
    ("Qwen/Qwen1.5-MoE-A2.7B", 8, "all-linear"),
]


@pytest.mark.parametrize("model_id,rank,targets", LORA_CASES, ids=lambda v: str(v))
def test_lora_trainable_params_equal_peft(model_id, rank, targets):
    entry = next(e for e in load_catalog() if e["id"] == model_id)
    model = _meta_model(entry["config"])
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=rank, target_modules=targets))
    expected = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert plan_adapter(resolve_model(model_id), rank, targets).trainable_params == expected


def test_llama2_7b_q_v_rank8_is_the_published_count():
    # litgpt resource tables / memory_formulas.md §4: 4,194,304.
    assert plan_adapter(resolve_model("meta-llama/Llama-2-7b-hf"), 8, "q_proj,v_proj").trainable_params == 4_194_304
