"""Every command works with the network blocked, and an uncached hub id says so plainly.

A socket guard makes `socket.connect`, `create_connection` and `getaddrinfo` raise and
remembers every attempt; advise -> estimate -> run -> eval -> report then runs on the
bundled tiny model through the CLI.  No attempt may be made, not even one a library
caught and swallowed.

    .venv/bin/python -m pytest tests/integration/test_offline.py
"""

from __future__ import annotations

import json
import socket

import pytest
from runner_kit import arithmetic_rows, write_jsonl

from tunewise.cli import main

pytestmark = pytest.mark.slow
DOMAIN = [{"prompt": f"What is {i}+1? ", "choices": [f"{i}+1={i + 1}.", f"{i}+1={i + 2}."], "answer": 0}
          for i in range(6)]


@pytest.fixture
def no_network(monkeypatch):
    attempts: list[str] = []

    def refuse(what):
        def blocked(*args, **kwargs):
            attempts.append(f"{what}{args[1:2] if what == 'connect' else args[:1]}")
            raise OSError(f"network blocked by the test ({what})")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


def test_the_guard_blocks(no_network):
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert no_network


def test_advise_estimate_run_eval_report_offline(no_network, tiny_model_dir, tmp_path, capsys):
    model = str(tiny_model_dir)
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(24))
    domain = write_jsonl(tmp_path / "held_out.jsonl", DOMAIN)
    plan, runs = tmp_path / "plan.yaml", tmp_path / "runs"
    steps = [
        ["advise", "--model", model, "--data", str(train), "--gpu", "cpu", "--method", "lora", "--seq-len", "96",
         "--out", str(plan), "--no-history"],
        ["estimate", "--model", model, "--method", "lora", "--seq-len", "96", "--examples", "24", "--json",
         "--no-history"],
        ["run", str(plan), "--out", str(runs), "--max-steps", "2", "--batch-size", "4"],
        ["eval", str(runs / "lora"), "--domain", str(domain), "--retention", "builtin", "--limit", "4",
         "--examples", "1", "--out", str(tmp_path / "eval")],
        ["report", str(runs), "--eval", str(tmp_path / "eval"), "-o", str(tmp_path / "report.html")],
    ]
    for argv in steps:
        code = main(argv)
        assert code == 0, (argv[0], capsys.readouterr().err[-2000:])
    assert json.loads((runs / "lora" / "record.json").read_text())["status"] == "completed"
    assert (tmp_path / "report.html").stat().st_size > 100_000  # plotly.js inlined: opens offline
    assert no_network == []


def test_uncached_hub_id_is_one_plain_line(no_network, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the CLI turns offline on by itself
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(4))
    for argv in (["run", "--method", "lora", "--model", "acme/not-downloaded-7b", "--data", str(train),
                  "--out", str(tmp_path / "runs")],
                 ["eval", "--base", "acme/not-downloaded-7b", "--domain", str(write_jsonl(tmp_path / "d.jsonl", DOMAIN)),
                  "--retention", "none", "--out", str(tmp_path / "eval")]):
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "acme/not-downloaded-7b is not in the local cache and tunewise is offline" in err
    assert no_network == []
