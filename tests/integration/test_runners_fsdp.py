"""FSDP and DeepSpeed on a CPU-only machine: refused in one line, for a reason that is tested.

    .venv/bin/python -m pytest tests/integration/test_runners_fsdp.py

accelerate 1.16 cannot run FSDP on CPU: with `use_cpu` its state becomes MULTI_CPU (DDP
over gloo) and the FSDP plugin is dropped (accelerate/state.py only switches MULTI_GPU-like
types to FSDP), so a "FSDP" run would silently be DDP.  tunewise refuses that before
launching, and `test_accelerate_still_ignores_fsdp_on_cpu` launches accelerate with the
generated FSDP config to show the fallback: when a new accelerate runs FSDP on CPU it fails,
and the refusal should go.  The real FSDP runs are in tests/gpu/test_multi_gpu.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runner_kit import arithmetic_rows, make_plan, write_jsonl

from runners import run_plan
from runners._common import RunContext, RunOptions, Runtime
from runners.accelerate_config import Topology, build
from runners.launch import _layer_classes, _pythonpath
from runners.translate import to_sft
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.plan import Plan
from tunewise.records import RunRecord
from tunewise.settings import TrainSettings

pytestmark = pytest.mark.slow

REPORT_STATE = """
import json, os, sys
from accelerate import Accelerator
from accelerate.state import AcceleratorState
accelerator = Accelerator(cpu=True)
with open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".json"), "w") as out:
    json.dump({"type": str(accelerator.distributed_type),
               "fsdp_plugin": getattr(AcceleratorState(), "fsdp_plugin", None) is not None}, out)
"""


@pytest.mark.parametrize(("strategy", "words"), [("fsdp", "needs CUDA GPUs"), ("deepspeed", "pip install deepspeed")])
def test_sharded_strategies_on_cpu_are_refused_before_launch(tiny_model_dir, tmp_path, strategy, words):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    plan = make_plan(tiny_model_dir, Method.LORA, train, name="sharded", strategy=strategy, zero_stage=3)
    with pytest.raises(InputError) as err:
        run_plan(plan, tmp_path / "runs", num_processes=2, device="cpu")
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs" / "sharded").exists()  # nothing started, nothing written


def test_accelerate_still_ignores_fsdp_on_cpu(tiny_model_dir, tmp_path):
    """The reason for the refusal: the generated FSDP config, launched on CPU, runs as MULTI_CPU."""
    settings = TrainSettings(strategy="fsdp", zero_stage=3)
    layers = _layer_classes(str(tiny_model_dir))
    assert layers == ("LlamaDecoderLayer",)  # the auto-wrap class, read from the model's config
    files = build(settings, Method.LORA, Topology(2), on_cpu=True, layer_classes=layers)
    config = tmp_path / "accelerate_config.yaml"
    config.write_text(yaml.safe_dump(files.accelerate))
    script = tmp_path / "report_state.py"
    script.write_text(REPORT_STATE)
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": _pythonpath(), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank*.json"))]
    assert len(ranks) == 2
    assert all(r["type"] == "DistributedType.MULTI_CPU" and not r["fsdp_plugin"] for r in ranks), (
        f"accelerate now keeps FSDP on CPU ({ranks}): allow strategy fsdp on CPU in runners/accelerate_config.check")


def _ctx(settings: TrainSettings, tmp_path: Path, world_size: int) -> RunContext:
    plan = Plan(method=Method.QLORA, model="m", settings=settings)
    runtime = Runtime("cpu", "bf16", "test", world_size=world_size)
    return RunContext(plan, settings, tmp_path, runtime, RunOptions(), RunRecord(name="t", method="qlora",
                                                                                 base_model="m"))


@pytest.mark.parametrize(("strategy", "stage", "world", "storage", "device_map"), [
    ("fsdp", 3, 2, "bfloat16", True),       # FSDP shards the 4-bit weights stored as bf16
    ("deepspeed", 3, 2, "bfloat16", False),  # ZeRO-3 places the weights itself
    ("deepspeed", 2, 2, "bfloat16", True),
    ("ddp", 0, 2, "uint8", True),            # DDP and one process keep bitsandbytes' packed uint8
    ("fsdp", 3, 1, "uint8", True),
])
def test_qlora_stores_4bit_weights_in_the_compute_dtype_when_sharded(tmp_path, strategy, stage, world, storage,
                                                                     device_map):
    settings = TrainSettings(strategy=strategy, zero_stage=stage, learning_rate=1e-4)
    up = to_sft(_ctx(settings, tmp_path, world), loss="completion_only", adapter=True, quantized=True)
    quant = up.load_kwargs["quantization_config"]
    assert str(quant.bnb_4bit_quant_storage).removeprefix("torch.") == storage
    assert str(quant.bnb_4bit_compute_dtype).removeprefix("torch.") == "bfloat16"
    assert ("device_map" in up.load_kwargs) is device_map
