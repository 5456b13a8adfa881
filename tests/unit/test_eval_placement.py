"""Where `tunewise eval` puts a model: one device, or, for plain `cuda` with several GPUs,
its layers spread over all of them -- and the estimate of prompting says the same.

    .venv/bin/python -m pytest tests/unit/test_eval_placement.py
"""

import pytest

from advisor.estimate import estimate
from advisor.hardware import resolve_hardware
from advisor.models import resolve_model
from evals import harness
from tunewise import hub
from tunewise.methods import Method
from tunewise.settings import TrainSettings


class FakeModel:
    def __init__(self):
        self.moved_to = None

    def to(self, device):
        self.moved_to = device
        return self

    def eval(self):
        return self


@pytest.fixture
def loads(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(hub, "load_tokenizer", lambda path: "tokenizer")

    def load(path, kwargs):
        calls.append(kwargs)
        return FakeModel()

    monkeypatch.setattr(hub, "load_causal_lm", load)
    return calls


@pytest.mark.parametrize("device, gpus, spread", [("cuda", 4, True), ("cuda", 1, False), ("cuda:1", 4, False)])
def test_plain_cuda_with_several_gpus_spreads_the_layers(loads, monkeypatch, device, gpus, spread):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    model, tok = harness._load("some/model", torch.bfloat16, device)
    assert tok == "tokenizer"
    assert (loads[0].get("device_map") == "auto") is spread
    assert model.moved_to == (None if spread else device)


def test_cpu_never_spreads(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert not harness.spread_over_gpus("cpu")


def test_prompting_a_70b_model_fits_two_80gb_gpus_of_one_node_not_one():
    def est(gpus, nodes=1):
        return estimate(resolve_model("meta-llama/Llama-3.1-70B"), Method.PROMPT, resolve_hardware("h100"),
                        TrainSettings(batch_size=1, seq_len=2048), gpus=gpus, nodes=nodes)

    one, two = est(1), est(2)
    assert not one.fits and two.fits
    assert two.memory.weights == pytest.approx(one.memory.weights / 2)
    assert est(2, nodes=2).memory.weights == pytest.approx(one.memory.weights)  # one GPU per node
    assert any("device_map" in a for a in two.assumptions)
