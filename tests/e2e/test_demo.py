"""`tunewise demo --quick` end to end, as a user runs it: one subprocess, offline, on CPU.

    .venv/bin/python -m pytest tests/e2e

The demo runs once per module (about two minutes on 2 cores); each test checks one
promise of issue 7 against what it wrote: the exit code, the report covering every
method, a measured domain gain for every trained method, completed run records, the
advice ladder, and an unrelated folder left untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

METHODS = ("prompt", "lora", "qlora", "full", "dpo")
TRAINED = ("lora", "qlora", "full", "dpo")
TUNEWISE = [sys.executable, "-m", "tunewise"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TUNEWISE_HOME": str(home), "TUNEWISE_NO_HISTORY": "1"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the quick demo once; the completed process and its --out folder."""
    root = tmp_path_factory.mktemp("demo")
    out = root / "tunewise-demo"
    proc = subprocess.run([*TUNEWISE, "demo", "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=900, env=_env(root / "home"), cwd=root)
    return proc, out


@pytest.fixture(scope="module")
def latest(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    pointer = json.loads((out / "latest.json").read_text())
    return out / pointer["folder"]


def test_exit_code_zero_and_the_report_path_on_stdout(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    report_lines = [line for line in proc.stdout.splitlines() if line.startswith("report: ")]
    assert len(report_lines) == 1
    assert Path(report_lines[0].removeprefix("report: ")).name == "report.html"
    assert "Traceback" not in proc.stderr


def _section(html: str, section: str) -> str:
    start = html.index(f'id="sec-{section}"')
    end = html.find('id="sec-', start + 1)
    return html[start:end if end != -1 else len(html)]


def test_the_report_exists_and_covers_every_method(demo, latest):
    _, out = demo
    for page in (out / "report.html", latest / "report.html"):
        html = page.read_text(encoding="utf-8")
        assert "<html" in html.lower() and len(html) > 100_000  # plotly.js is inlined
        scorecard = _section(html, "scorecard")
        for method in METHODS:
            assert f"<tr><td>{method}</td>" in scorecard, f"{method} has no scorecard row in {page}"
        training = _section(html, "training")
        for method in TRAINED:
            assert f'"name":"{method}"' in training, f"{method} has no training curve in {page}"


def test_every_run_record_is_completed(latest):
    for method in METHODS:
        record = json.loads((latest / "runs" / method / "record.json").read_text())
        assert record["status"] == "completed", (method, record.get("error"))
        assert record["method"] == method
    dpo = json.loads((latest / "runs" / "dpo" / "record.json").read_text())
    assert Path(dpo["init_from"]).name == "lora"  # DPO continues the LoRA SFT run


def test_eval_shows_a_domain_gain_for_every_trained_method(latest):
    record = json.loads((latest / "eval" / "eval.json").read_text())
    assert [v["name"] for v in record["variants"]] == ["base", *METHODS]
    for run in TRAINED:
        domain = [c for c in record["comparisons"] if c["run"] == run and c["kind"] == "domain"]
        assert domain, f"no domain comparison for {run}"
        assert any(c["verdict"] == "gain" or c["ci_low"] > 0 for c in domain), (run, domain)


def test_retention_is_measured_for_every_run(latest):
    record = json.loads((latest / "eval" / "eval.json").read_text())
    for run in METHODS:
        assert any(c["run"] == run and c["kind"] == "retention" for c in record["comparisons"]), run


def test_the_advice_ladder_is_kept_and_printed(demo, latest):
    proc, _ = demo
    advice = latest / "advice"
    for key in ("tiny-domain_50", "tiny-domain_500", "tiny-domain_all", "llama8b-50k-budget"):
        body = json.loads((advice / f"{key}.json").read_text())
        assert body["schema"] == "tunewise/advice/v1"
        assert (advice / f"{key}.plan.yaml").is_file()
    small = json.loads((advice / "tiny-domain_50.json").read_text())["recommendation"]["method"]
    assert small == "prompt"
    assert "tiny model, domain_50" in proc.stdout


def test_a_folder_the_user_made_is_refused_untouched(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    proc = subprocess.run([*TUNEWISE, "demo", "--quick", "--out", str(mine)], capture_output=True, text=True,
                          timeout=120, env=_env(tmp_path / "home"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a tunewise demo output" in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
