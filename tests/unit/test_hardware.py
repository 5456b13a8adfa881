"""Hardware catalog: coverage, lookup order, unknown devices, user files, support flags.

    .venv/bin/python -m pytest tests/unit/test_hardware.py
"""

import pytest

from advisor.estimate import estimate
from advisor.hardware import list_hardware, resolve_hardware
from advisor.models import resolve_model
from tunewise.errors import InputError, UnknownHardwareError
from tunewise.methods import Method
from tunewise.settings import TrainSettings


def test_catalog_covers_the_required_devices_with_sourced_prices():
    rows = list_hardware()
    gpus = [r for r in rows if r.kind == "gpu"]
    assert len(gpus) >= 15
    names = {r.name for r in rows}
    assert {"rtx-3090", "rtx-4090", "rtx-5090", "rtx-4060ti-16gb", "rtx-4080", "t4", "a10g", "l4", "l40s",
            "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "mi300x", "cpu"} <= names
    assert any(r.kind == "apple" for r in rows)
    for row in gpus:
        assert row.memory_gib > 0 and row.bf16_tflops > 0, row.name
        if row.usd_per_hour is not None:
            assert row.price_source and row.price_date, row.name


@pytest.mark.parametrize("device,expected", [
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("RTX 4090", "rtx-4090"),
    ("NVIDIA L40S", "l40s"),
    ("Tesla T4", "t4"),
])
def test_device_strings_match_the_most_specific_row(device, expected):
    assert resolve_hardware(device).name == expected


def test_unknown_gpu_asks_for_its_memory_instead_of_guessing():
    with pytest.raises(UnknownHardwareError, match="--gpu-mem-gib") as exc:
        resolve_hardware("tpu-v9")
    assert exc.value.exit_code == 2
    custom = resolve_hardware("tpu-v9", 32)
    assert custom.memory_gib == 32 and custom.bf16_tflops is None


def test_memory_override_and_non_positive_memory():
    assert resolve_hardware("cpu", 16).memory_gib == 16
    with pytest.raises(InputError) as exc:
        resolve_hardware("rtx-4090", 0)
    assert exc.value.field == "gpu_mem_gib"


def test_user_file_adds_devices_and_overrides_prices(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text("hardware:\n  - {name: lab-card, memory_gib: 40, bf16_tflops: 200, usd_per_hour: 0.9}\n"
                    "prices:\n  rtx-4090: 0.35\n")
    lab = resolve_hardware("lab-card", catalog_path=path)
    assert (lab.memory_gib, lab.usd_per_hour) == (40, 0.9)
    card = resolve_hardware("rtx-4090", catalog_path=path)
    assert card.usd_per_hour == 0.35 and "hw.yaml" in card.price_source


def test_user_file_errors_name_file_and_field(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text("hardware:\n  - {name: x, memory_gib: 40, colour: red}\n")
    with pytest.raises(InputError) as exc:
        list_hardware(path)
    assert exc.value.path == str(path) and exc.value.field == "hardware[0].colour"
    path.write_text("prices:\n  no-such-card: 1.0\n")
    with pytest.raises(InputError, match="no hardware named"):
        list_hardware(path)


def _est(method, gpu, **settings):
    return estimate(resolve_model("meta-llama/Llama-2-7b-hf"), method, resolve_hardware(gpu),
                    TrainSettings(batch_size=1, seq_len=512, **settings))


def test_t4_has_no_bf16_but_fp16_works():
    refused = _est(Method.LORA, "t4")
    assert not refused.supported and not refused.fits and "bf16" in refused.reason
    assert _est(Method.QLORA, "t4", precision="fp16").supported


def test_paged_and_8bit_optimizers_are_unsupported_on_apple():
    assert not _est(Method.QLORA, "apple-m3-max-64gb", optimizer="paged-adamw-8bit").supported
    assert not _est(Method.LORA, "apple-m3-max-64gb", optimizer="adamw-8bit").supported
    qlora = _est(Method.QLORA, "apple-m3-max-64gb")
    assert qlora.supported and any("fallback" in w for w in qlora.warnings)


def test_several_gpus_need_gpu_devices():
    est = estimate(resolve_model("gpt2"), Method.LORA, resolve_hardware("cpu", 16), TrainSettings(), gpus=2)
    assert not est.supported and "--gpus 2" in est.reason


@pytest.mark.parametrize("device,expected", [
    ("NVIDIA GeForce RTX 4060 Ti", "rtx-4060ti-16gb"),
    ("NVIDIA RTX A6000", "rtx-a6000"),
    ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA H100 NVL", "h100-nvl"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA B200", "b200"),
    ("AMD Instinct MI300X", "mi300x"),
    ("h100-sxm5-80gb", "h100-sxm"),
    ("a100_80", "a100-80gb"),
])
def test_real_device_strings_still_resolve(device, expected):
    assert resolve_hardware(device).name == expected


@pytest.mark.parametrize("device,close", [("rtx-a1000", "rtx-a6000"), ("gh200", "h200"), ("NVIDIA GH200 480GB", "h200")])
def test_a_pattern_matches_whole_tokens_not_a_longer_name(device, close):
    # "a100" inside "rtx-a1000" (an 8 GB card) or "h200" inside "gh200" is another device
    with pytest.raises(UnknownHardwareError) as exc:
        resolve_hardware(device)
    assert exc.value.field == "gpu" and "--gpu-mem-gib" in exc.value.message
    assert close in exc.value.message.split("close names: ")[1].split(";")[0].split(", ")


def test_unknown_gpu_lists_close_names_not_the_whole_catalog():
    with pytest.raises(UnknownHardwareError) as exc:
        resolve_hardware("rtx-4091")
    assert "rtx-4090" in exc.value.message and "mi300x" not in exc.value.message


def _hw_file(tmp_path, text):
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    return path


def test_a_user_pattern_that_is_no_regex_is_named_when_the_file_loads(tmp_path):
    path = _hw_file(tmp_path, 'hardware: [{name: g1, memory_gib: 24, bf16_tflops: 100, patterns: ["[unclosed"]}]\n')
    with pytest.raises(InputError, match="not a valid regular expression") as exc:
        resolve_hardware("zzz", catalog_path=path)
    assert exc.value.path == str(path) and exc.value.field == "hardware[0].patterns[0]"


@pytest.mark.parametrize("patterns,field", [('"g1"', "hardware[0].patterns"), ("[3]", "hardware[0].patterns[0]"),
                                             ('["a)|(b"]', "hardware[0].patterns[0]")])
def test_user_patterns_must_be_a_list_of_valid_regex_strings(tmp_path, patterns, field):
    path = _hw_file(tmp_path, f"hardware: [{{name: g1, memory_gib: 24, bf16_tflops: 100, patterns: {patterns}}}]\n")
    with pytest.raises(InputError) as exc:
        list_hardware(path)
    assert exc.value.field == field


def test_user_patterns_match_whole_tokens_too(tmp_path):
    path = _hw_file(tmp_path, 'hardware: [{name: lab, memory_gib: 24, bf16_tflops: 100, patterns: ["x9"]}]\n')
    assert resolve_hardware("Acme X9 PCIe", catalog_path=path).name == "lab"
    with pytest.raises(UnknownHardwareError):
        resolve_hardware("acme-x90", catalog_path=path)


@pytest.mark.parametrize("row_or_prices,field", [
    ("hardware: [{name: g1, memory_gib: .nan, bf16_tflops: 100}]", "hardware[0].memory_gib"),
    ("hardware: [{name: g1, memory_gib: .inf, bf16_tflops: 100}]", "hardware[0].memory_gib"),
    ("hardware: [{name: g1, memory_gib: 24, bf16_tflops: .nan}]", "hardware[0].bf16_tflops"),
    ("hardware: [{name: g1, memory_gib: 24, bf16_tflops: .inf}]", "hardware[0].bf16_tflops"),
    ("hardware: [{name: g1, memory_gib: 24, bf16_tflops: 100, usd_per_hour: .nan}]", "hardware[0].usd_per_hour"),
    ("hardware: [{name: g1, memory_gib: 24, bf16_tflops: 100, step_overhead_s: -1000}]",
     "hardware[0].step_overhead_s"),
    ("hardware: [{name: g1, memory_gib: 24, bf16_tflops: 100, interconnect_gbs: .inf}]",
     "hardware[0].interconnect_gbs"),
    ("prices: {rtx-4090: .nan}", "prices.rtx-4090"),
    ("prices: {rtx-4090: .inf}", "prices.rtx-4090"),
    ("prices: {rtx-4090: true}", "prices.rtx-4090"),
])
def test_user_file_numbers_must_be_finite_and_in_range(tmp_path, row_or_prices, field):
    path = _hw_file(tmp_path, row_or_prices + "\n")
    with pytest.raises(InputError) as exc:
        list_hardware(path)
    assert exc.value.path == str(path) and exc.value.field == field


def test_a_free_device_and_no_step_overhead_are_fine(tmp_path):
    path = _hw_file(tmp_path, "hardware: [{name: g1, memory_gib: 24, bf16_tflops: 100, step_overhead_s: 0}]\n"
                              "prices: {g1: 0}\n")
    row = resolve_hardware("g1", catalog_path=path)
    assert (row.usd_per_hour, row.step_overhead_s) == (0, 0)


@pytest.mark.parametrize("memory", [float("nan"), float("inf"), -1.0])
def test_memory_override_must_be_finite(memory):
    with pytest.raises(InputError) as exc:
        resolve_hardware("my-card", memory)
    assert exc.value.field == "gpu_mem_gib"


@pytest.mark.parametrize("device,precision", [("rtx-4090", "bf16"), ("t4", "fp16"), ("apple-m1-16gb", "fp16"),
                                              ("apple-m2-16gb", "bf16"), ("cpu", "fp32")])
def test_default_precision_follows_the_device(device, precision):
    assert resolve_hardware(device, 16).default_precision() == precision
