"""A JSONL line too long is refused without being read whole.

    .venv/bin/python -m pytest tests/unit/test_data_lines.py
"""

import io

import pytest

from tunewise import data
from tunewise.errors import InputError


def test_no_line_is_read_beyond_the_limit(monkeypatch):
    monkeypatch.setattr(data, "MAX_LINE_BYTES", 1024)
    handle = io.BytesIO(b'{"a": 1}\n' + b"x" * 100_000 + b"\n{}\n")
    chunks = list(data._bounded_lines(handle))
    assert chunks[0] == b'{"a": 1}\n'
    assert max(len(c) for c in chunks) == 1025  # a longer line arrives in pieces, never whole


def test_a_too_long_line_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_LINE_BYTES", 1024)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "' + b"x" * 5000 + b'"}\n')
    with pytest.raises(InputError) as caught:
        list(data._iter_jsonl(path))
    assert caught.value.line == 2 and "longer than" in str(caught.value)
