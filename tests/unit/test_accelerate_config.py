"""The accelerate config (and DeepSpeed JSON) a multi-process run launches with.

    .venv/bin/python -m pytest tests/unit/test_accelerate_config.py

Generation is pure Python; one test hands every generated file to accelerate's own
loader, launcher checks and plugins in a separate interpreter (accelerate_probe.py:
torch stays out of this process).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runners.accelerate_config import (
    DEEPSPEED_FILE,
    Topology,
    build,
    check,
    deepspeed_json,
    launch_precision,
)
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

PROBE = Path(__file__).with_name("accelerate_probe.py")
ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("LlamaDecoderLayer",)


def _valid(strategy: str, stage: int, offload: bool) -> bool:
    if strategy == "ddp":
        return stage == 0 and not offload
    if strategy == "fsdp":
        return stage != 1
    return stage >= 2 or not offload


COMBOS = [
    (strategy, stage, offload, method)
    for strategy, stage, offload, method in itertools.product(
        ("ddp", "fsdp", "deepspeed"), (0, 1, 2, 3), (False, True), (Method.LORA, Method.QLORA))
    if _valid(strategy, stage, offload)
]
ALL_THERE = {"deepspeed": "0.18.0", "accelerate": "1.16.0", "torch": "2.13.0", "bitsandbytes": "0.50.2",
             "transformers": "5.25.0"}


def _settings(strategy="ddp", stage=0, offload=False, **kw) -> TrainSettings:
    return TrainSettings(strategy=strategy, zero_stage=stage, cpu_offload=offload, **kw)


def _build(settings, method=Method.LORA, topology=None, on_cpu=False, **kw):
    return build(settings, method, topology or Topology(8), on_cpu=on_cpu, layer_classes=LAYERS, **kw)


@pytest.mark.parametrize(("strategy", "stage", "offload", "method"), COMBOS)
def test_every_valid_combination_passes_the_checks_and_maps_its_settings(strategy, stage, offload, method):
    s = _settings(strategy, stage, offload)
    check(s, method, Topology(8), on_cpu=False, gpus=8, version=ALL_THERE.get)
    files = _build(s, method)
    config = files.accelerate
    assert config["num_processes"] == 8 and config["use_cpu"] is False
    if strategy == "ddp":
        assert config["distributed_type"] == "MULTI_GPU" and files.deepspeed is None
    elif strategy == "fsdp":
        fsdp = config["fsdp_config"]
        assert config["distributed_type"] == "FSDP" and fsdp["fsdp_version"] == 2
        assert fsdp["fsdp_reshard_after_forward"] is (stage != 2)  # ZeRO-2 = SHARD_GRAD_OP
        assert fsdp["fsdp_offload_params"] is offload
        assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
        assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"  # checkpoints; artifacts gathered once
    else:
        zero = files.deepspeed["zero_optimization"]
        assert config["distributed_type"] == "DEEPSPEED" and zero["stage"] == stage
        assert ("offload_optimizer" in zero) is offload and ("offload_param" in zero) is (offload and stage == 3)
        assert "mixed_precision" not in config  # accelerate refuses it next to a DeepSpeed JSON
    assert any("quant_storage" in n for n in files.notes) is (method is Method.QLORA and strategy != "ddp")


def test_accelerate_itself_accepts_every_generated_config(tmp_path):
    """accelerate's loader, launcher validation and FSDP/DeepSpeed plugins, on every file."""
    expected = {}
    for i, (strategy, stage, offload, method) in enumerate(COMBOS):
        machines = 2 if i % 3 == 0 else 1  # a third of them as two-machine configs
        topology = Topology(16 if machines == 2 else 8, machines, machine_rank=i % machines,
                            main_process_ip="10.0.0.1" if machines == 2 else None)
        s = _settings(strategy, stage, offload, precision="amp" if i % 2 else "bf16")
        files = _build(s, method, topology, deepspeed_path=str(tmp_path / f"{i}.json"))
        path = tmp_path / f"{i}.yaml"
        path.write_text(yaml.safe_dump(files.accelerate))
        if files.deepspeed is not None:
            (tmp_path / f"{i}.json").write_text(json.dumps(files.deepspeed))
        expected[str(path)] = (strategy, stage, offload)
    broken = tmp_path / "broken.yaml"  # the probe must be able to say no
    broken.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "fsdp_config": {"fsdp_use_orig_parms": 1}}))
    rows = _probe(list(expected) + [str(broken)])
    assert not rows.pop(str(broken))["ok"]
    for path, row in rows.items():
        strategy, stage, offload = expected[path]
        assert row["ok"], (expected[path], row["error"])
        if strategy == "fsdp":
            assert row["fsdp_version"] == 2 and row["wrap"] == list(LAYERS)
            assert row["reshard_after_forward"] is (stage != 2) and row["offload"] is offload
            assert row["ram_efficient"] is True and "SHARDED_STATE_DICT" in row["state_dict"]
        elif strategy == "deepspeed":
            assert row["zero_stage"] == stage and row["zero3_init"] is (stage == 3)
            assert row["offload_optimizer"] == ("cpu" if offload else "none")
            assert row["offload_param"] == ("cpu" if offload and stage == 3 else "none")
        else:
            assert row["distributed_type"].endswith("MULTI_GPU")


def _probe(paths: list[str]) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, str(PROBE), *paths], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {row["path"]: row for row in rows}


def test_precision_maps_to_accelerate_autocast():
    assert _build(_settings("fsdp", 3, precision="amp")).accelerate["mixed_precision"] == "bf16"
    assert _build(_settings("fsdp", 3, precision="bf16")).accelerate["mixed_precision"] == "no"  # pure bf16
    assert _build(_settings(precision="fp16")).accelerate["mixed_precision"] == "fp16"
    assert _build(_settings(precision="amp"), on_cpu=True).accelerate["mixed_precision"] == "no"
    # DeepSpeed's bf16 keeps fp32 masters: a pure-bf16 plan trains as amp there, and says so
    ds = _settings("deepspeed", 2, precision="bf16")
    assert launch_precision(ds) == "amp" and launch_precision(_settings("fsdp", 3)) == "bf16"
    assert any("fp32 master" in n for n in _build(ds).notes)


def test_deepspeed_json_leaves_trainer_values_to_the_trainer():
    config = deepspeed_json(_settings("deepspeed", 3, True))
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert config[key] == "auto"
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert config["optimizer"]["type"] == "AdamW"  # ZeRO-Offload needs DeepSpeed's CPU Adam
    assert "optimizer" not in deepspeed_json(_settings("deepspeed", 2))  # the Trainer's own optimizer


def test_deepspeed_yaml_points_at_the_json_by_absolute_path(tmp_path):
    files = _build(_settings("deepspeed", 2), deepspeed_path=str(tmp_path / DEEPSPEED_FILE))
    assert files.accelerate["deepspeed_config"]["deepspeed_config_file"] == str(tmp_path / DEEPSPEED_FILE)


def test_topology_for_one_and_several_machines():
    one = _build(_settings(), topology=Topology(8)).accelerate
    assert one["main_process_port"] == 0 and "main_process_ip" not in one  # any free port
    two = _build(_settings("deepspeed", 3), topology=Topology(16, 2, 1, "10.0.0.1")).accelerate
    assert (two["num_processes"], two["num_machines"], two["machine_rank"]) == (16, 2, 1)
    assert two["main_process_ip"] == "10.0.0.1" and two["main_process_port"] == 29500
    assert two["deepspeed_config"]["deepspeed_multinode_launcher"] == "standard"  # torchrun, no hostfile
    assert Topology(16, 2, 0, "h", 1234).port == 1234


@pytest.mark.parametrize("host", ["10.0.0.1", "fe80::1", "node-0", "gpu07.cluster.local"])
def test_main_process_ip_takes_addresses_and_host_names(host):
    assert Topology(16, 2, 0, host).main_process_ip == host


@pytest.mark.parametrize("host", ["not_an_ip!", "a..b", "-node", "10.0.0.1:29500"])
def test_a_main_process_ip_that_is_no_address_is_refused_before_launch(host):
    with pytest.raises(InputError) as caught:
        Topology(16, 2, 0, host)
    assert caught.value.field == "main_process_ip" and host in str(caught.value)


def test_unknown_layer_class_leaves_the_wrap_to_accelerate():
    files = build(_settings("fsdp", 3), Method.LORA, Topology(2), on_cpu=False)
    assert "fsdp_transformer_layer_cls_to_wrap" not in files.accelerate["fsdp_config"]
    assert any("_no_split_modules" in n for n in files.notes)


@pytest.mark.parametrize(("topology", "field", "words"), [
    (dict(num_processes=0), "num_processes", ">= 1"),
    (dict(num_processes=16, num_machines=2), "main_process_ip", "--main-process-ip"),
    (dict(num_processes=3, num_machines=2, main_process_ip="h"), "num_processes", "split evenly"),
    (dict(num_processes=4, num_machines=2, machine_rank=2, main_process_ip="h"), "machine_rank", "0..1"),
    (dict(num_processes=4, num_machines=2, main_process_ip="h", main_process_port=0), "main_process_port",
     "one machine"),
    (dict(num_processes=2, main_process_port=70000), "main_process_port", "0..65535"),
])
def test_bad_topology_is_one_clear_line(topology, field, words):
    with pytest.raises(InputError) as err:
        Topology(**topology)
    assert err.value.field == field and words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("settings", "kw", "field", "words"), [
    (dict(strategy="ddp", stage=3), {}, "settings.zero_stage", "strategy fsdp"),
    (dict(strategy="ddp", offload=True), {}, "settings.cpu_offload", "fsdp or deepspeed"),
    (dict(strategy="fsdp", stage=1), {}, "settings.zero_stage", "no optimizer-only sharding"),
    (dict(strategy="deepspeed", stage=1, offload=True), {}, "settings.cpu_offload", "zero_stage 2 or 3"),
    (dict(strategy="deepspeed", stage=3, offload=True, optimizer="adamw-8bit"), {}, "settings.optimizer", "adamw"),
    (dict(strategy="deepspeed", stage=2), dict(version={}.get), "settings.strategy", "pip install deepspeed"),
    (dict(strategy="fsdp", stage=3), dict(on_cpu=True, gpus=None), "settings.strategy", "needs CUDA GPUs"),
    (dict(strategy="deepspeed", stage=3), dict(on_cpu=True, gpus=None), "settings.strategy", "MULTI_CPU"),
    (dict(), dict(gpus=4), "num_processes", "4 CUDA GPU(s)"),
    (dict(strategy="fsdp", stage=3), dict(method=Method.QLORA, version={**ALL_THERE, "bitsandbytes": "0.42.0"}.get),
     "settings.strategy", "bitsandbytes >= 0.43.0"),
    (dict(strategy="fsdp", stage=3), dict(version={**ALL_THERE, "accelerate": "1.5.2"}.get), "settings.strategy",
     "accelerate >= 1.6.0"),
])
def test_bad_combination_is_one_clear_line_before_launch(settings, kw, field, words):
    options = dict(method=Method.LORA, on_cpu=False, gpus=8, version=ALL_THERE.get) | kw
    method = options.pop("method")
    with pytest.raises(InputError) as err:
        check(_settings(**settings), method, Topology(8), **options)
    assert err.value.field == field and words in str(err.value) and "\n" not in str(err.value)


def test_qlora_with_fsdp_passes_with_quant_storage_support():
    check(_settings("fsdp", 3), Method.QLORA, Topology(8), on_cpu=False, gpus=8, version=ALL_THERE.get)
    # DDP on CPU (the tested path) needs neither GPUs nor DeepSpeed
    check(_settings(), Method.QLORA, Topology(2), on_cpu=True, gpus=None, version={}.get)
