"""`tunewise advise`, `tunewise estimate` and `--help` work with torch made unimportable.

    .venv/bin/python -m pytest tests/unit/test_no_torch.py

Each command runs in a fresh interpreter whose sys.modules maps torch, transformers,
peft, trl, lm_eval (and pandas, for JSONL data) to None, so any import of them, direct
or transitive, raises ImportError and the command fails.
"""

import json
import subprocess
import sys

import pytest

BLOCKED = ("torch", "transformers", "peft", "trl", "lm_eval", "bitsandbytes", "accelerate", "pandas")
WRAPPER = (
    "import sys\n"
    f"for name in {BLOCKED!r}:\n"
    "    sys.modules[name] = None\n"
    "from tunewise.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"leaked = [m for m in {BLOCKED!r} if sys.modules.get(m) is not None]\n"
    "assert not leaked, leaked\n"
    "sys.exit(code)\n"
)


def run_blocked(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=60)


def test_the_blocker_really_blocks():
    proc = subprocess.run([sys.executable, "-c", WRAPPER.replace("from tunewise.cli import main", "import torch")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "import of torch halted" in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["advise", "--help"], ["estimate", "--help"]])
def test_help(args):
    proc = run_blocked(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_advise_with_data_without_torch(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"question {i} about orders", "completion": f" answer {i}"}) + "\n"
                            for i in range(300)))
    proc = run_blocked("advise", "--model", "meta-llama/Llama-2-7b-hf", "--gpu", "rtx-4090",
                       "--data", str(data), "--json", "--out", str(tmp_path / "plan.yaml"))
    assert proc.returncode == 0, proc.stderr
    advice = json.loads(proc.stdout)
    assert advice["schema"] == "tunewise/advice/v1"
    assert (tmp_path / "plan.yaml").is_file()


def test_estimate_without_torch():
    proc = run_blocked("estimate", "--model", "meta-llama/Llama-2-7b-hf", "--method", "lora", "--gpu", "rtx-4090")
    assert proc.returncode == 0, proc.stderr
