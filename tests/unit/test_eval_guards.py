"""Checks `tunewise eval` makes before loading any model: the device exists on this machine,
and every variant's weights file is readable.

    .venv/bin/python -m pytest tests/unit/test_eval_guards.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import harness
from evals.evaluate import EvalOptions
from evals.variants import VariantSpec, check_weights
from tunewise.errors import InputError


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta", "", "CUDA"])
def test_a_device_torch_cannot_use_is_refused_by_name_without_torch(device):
    with pytest.raises(InputError) as caught:
        EvalOptions(run_dirs=[], device=device)
    assert caught.value.field == "device" and f"--device {device!r}" in str(caught.value)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps"])
def test_device_names_torch_knows_pass_the_name_check(device):
    assert EvalOptions(run_dirs=[], device=device).device == device


@pytest.fixture
def gpus(monkeypatch):
    """Pretend torch sees `n` CUDA GPUs."""
    import torch

    def set_count(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return set_count


def test_cuda_without_a_gpu_is_refused_like_tunewise_run(gpus):
    gpus(0)
    with pytest.raises(InputError) as caught:
        harness.resolve_device("cuda")
    assert str(caught.value) == "field 'device': --device cuda requested but torch sees no CUDA GPU"


def test_a_gpu_index_beyond_the_visible_ones_is_refused(gpus):
    gpus(2)
    assert harness.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(InputError, match=r"--device cuda:2 requested but torch sees 2 CUDA GPU\(s\)"):
        harness.resolve_device("cuda:2")


def test_no_device_given_means_cuda_when_there_is_one(gpus):
    gpus(0)
    assert harness.resolve_device(None) == "cpu"
    gpus(1)
    assert harness.resolve_device(None) == "cuda"


def _safetensors(path: Path, truncate: int = 0) -> Path:
    """A one-tensor safetensors file, written by hand (8-byte header length, JSON header, data)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    data = len(header).to_bytes(8, "little") + header + bytes(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) - truncate])
    return path


def _adapter(folder: Path, truncate: int = 0) -> VariantSpec:
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    _safetensors(folder / "adapter" / "adapter_model.safetensors", truncate)
    return VariantSpec(name=folder.name, method="lora", adapter=str(folder / "adapter"))


def test_readable_weights_pass(tmp_path):
    full = VariantSpec(name="full", method="full", model=str(_safetensors(tmp_path / "full" / "model.safetensors").parent))
    check_weights([VariantSpec("base", "base"), _adapter(tmp_path / "lora"), full], "some/hub-id")


@pytest.mark.parametrize("truncate", [8, 100])
def test_a_truncated_adapter_is_named_before_anything_is_evaluated(tmp_path, truncate):
    good, bad = _adapter(tmp_path / "good"), _adapter(tmp_path / "bad", truncate=truncate)
    with pytest.raises(InputError) as caught:
        check_weights([VariantSpec("base", "base"), good, bad], "some/hub-id")
    assert str(caught.value).startswith(f"{tmp_path / 'bad' / 'adapter' / 'adapter_model.safetensors'}: corrupt weights")


def test_a_corrupt_shard_of_a_full_model_or_of_a_local_base_is_named(tmp_path):
    _safetensors(tmp_path / "full" / "model-00001-of-00002.safetensors")
    bad = (tmp_path / "full" / "model-00002-of-00002.safetensors")
    bad.write_bytes(b"not safetensors")
    full = VariantSpec(name="full", method="full", model=str(tmp_path / "full"))
    with pytest.raises(InputError, match="model-00002-of-00002.safetensors: corrupt weights"):
        check_weights([VariantSpec("base", "base"), full], "some/hub-id")
    with pytest.raises(InputError, match="model-00002-of-00002.safetensors: corrupt weights"):
        check_weights([VariantSpec("base", "base")], str(tmp_path / "full"))


def test_an_adapter_folder_without_weights_is_named(tmp_path):
    spec = _adapter(tmp_path / "lora")
    (Path(spec.adapter) / "adapter_model.safetensors").unlink()
    with pytest.raises(InputError, match="no adapter_model.safetensors"):
        check_weights([spec], "some/hub-id")
