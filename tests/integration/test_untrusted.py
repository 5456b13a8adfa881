"""Untrusted content: a model's code never runs and pickles never load unless asked; YAML
builds no objects; run names stay inside the output folder.

Report strings are escaped: tests/unit/test_report_figures.py
(test_hostile_strings_are_escaped_in_html_and_figures) and, in a real browser,
tests/integration/test_report_browser.py (test_hostile_strings_execute_nothing_and_show_as_text).

    .venv/bin/python -m pytest tests/integration/test_untrusted.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from runner_kit import arithmetic_rows, write_jsonl

from runners._common import run_dir_for
from tunewise import hub
from tunewise.cli import main
from tunewise.errors import InputError
from tunewise.schema import read_yaml

pytestmark = pytest.mark.slow

# Imported only if transformers runs the model's own code: it leaves a marker file.
EVIL = '''
import os
from transformers import LlamaConfig, LlamaForCausalLM
open(os.environ["TW_MARKER"], "w").write("model code ran")


class EvilConfig(LlamaConfig):
    pass


class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
'''


def run_argv(model: Path, train: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "lora", "--model", str(model), "--data", str(train), "--out", str(out),
            "--max-steps", "1", "--seq-len", "96", *extra]


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def remote_code_model(tiny_model_dir, tmp_path, monkeypatch):
    """The tiny model plus an auto_map that points at evil.py."""
    import transformers.dynamic_module_utils as dynamic

    folder = tmp_path / "remote-code-model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "evil.py").write_text(EVIL)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "marker"
    monkeypatch.setenv("TW_MARKER", str(marker))
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # not the user's cache
    return folder, marker


def test_model_code_runs_only_with_trust_remote_code(remote_code_model, tmp_path, capsys):
    folder, marker = remote_code_model
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    assert main(run_argv(folder, train, tmp_path / "runs", "--name", "safe")) == 0
    assert not marker.exists()  # transformers' own Llama code was used; evil.py never imported
    capsys.readouterr()

    main(run_argv(folder, train, tmp_path / "runs", "--name", "trusted", "--trust-remote-code"))
    assert hub.TRUST_WARNING in capsys.readouterr().err
    assert marker.exists()  # the opt-in really reaches transformers
    assert not hub.trust_remote_code()  # and holds for that command only


@pytest.fixture
def pickle_only_model(tiny_model_dir, tmp_path):
    """The tiny model with its weights as pytorch_model.bin (a pickle) and no safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled-model"
    shutil.copytree(tiny_model_dir, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_pickled_weights_load_only_with_allow_pickle_weights(pickle_only_model, tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    assert main(run_argv(pickle_only_model, train, tmp_path / "runs", "--name", "refused")) == 2
    line = one_error_line(capsys)
    assert "pytorch_model.bin" in line and "safetensors only" in line and "--allow-pickle-weights" in line
    domain = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "1+1=", "choices": ["2", "3"], "answer": 0}])
    assert main(["eval", "--base", str(pickle_only_model), "--domain", str(domain), "--retention", "none",
                 "--out", str(tmp_path / "eval")]) == 2
    assert "--allow-pickle-weights" in one_error_line(capsys)

    assert main(run_argv(pickle_only_model, train, tmp_path / "runs", "--name", "opted-in",
                         "--allow-pickle-weights")) == 0
    assert hub.PICKLE_WARNING in capsys.readouterr().err
    assert (tmp_path / "runs" / "opted-in" / "adapter" / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "runs" / "opted-in").rglob("*.bin"))  # what we write is never a pickle


def test_yaml_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "yaml-marker"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        path = tmp_path / "plan.yaml"
        path.write_text(f"schema: tunewise/plan/v1\nname: {tag} ['touch {marker}']\n")
        with pytest.raises(InputError, match="invalid YAML"):
            read_yaml(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../x", "..", ".", "/tmp/x", "a/b", "a\\b", ".hidden", "x\x00y", "-rf", ""])
def test_run_names_cannot_leave_the_output_folder(name, tmp_path):
    with pytest.raises(InputError, match="invalid run name"):
        run_dir_for(tmp_path, name)


def test_a_symlinked_run_folder_cannot_point_outside(tmp_path):
    out, outside = tmp_path / "runs", tmp_path / "elsewhere"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / "lora")
    with pytest.raises(InputError, match="inside the output folder"):
        run_dir_for(out, "lora")
    assert run_dir_for(out, "lora-2") == (out / "lora-2").resolve()


def test_opt_in_restores_the_environment(monkeypatch):
    monkeypatch.delenv(hub.TRUST_ENV, raising=False)
    monkeypatch.setenv(hub.PICKLE_ENV, "0")
    with hub.opt_in(trust_code=True, allow_pickle=True) as warnings:
        assert hub.trust_remote_code() and hub.allow_pickle_weights() and len(warnings) == 2
        assert hub.load_kwargs() == {"trust_remote_code": True}
    assert os.environ.get(hub.TRUST_ENV) is None and os.environ[hub.PICKLE_ENV] == "0"
    assert hub.load_kwargs() == {"trust_remote_code": False, "use_safetensors": True}


def test_default_offline_keeps_a_users_choice(monkeypatch):
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hub.default_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and not hub.is_offline()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.default_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hub.is_offline()


def test_the_cache_lookup_is_local_and_total():
    assert hub._cached("acme/not-downloaded-7b") is False
    assert hub._cached("not a repo id !!") is False  # an invalid id is "not cached", not a crash
