"""A lone UTF-16 surrogate in parsed JSON ("\\ud800" is valid JSON, but no character) is found
and named by its field path, so a reader can refuse it in one line.

    .venv/bin/python -m pytest tests/unit/test_schema_unicode.py
"""

from __future__ import annotations

import json

import pytest

from tunewise.errors import InputError
from tunewise.schema import check_unicode, lone_surrogate


@pytest.mark.parametrize(("row", "field"), [
    ({"prompt": "\ud800", "completion": "b"}, "prompt"),
    ({"prompt": "a", "completion": "ok \udfff"}, "completion"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x\udc00"}]},
     "messages[1].content"),
    ({"prompt": "a", "meta": {"tags": ["ok", "\ud83d"]}}, "meta.tags[1]"),
    ({"prompt": "a", "b\ud800": 1}, "b\\ud800"),  # the key itself, printable
    ("\ud800", ""),
])
def test_the_field_holding_a_lone_surrogate_is_named(row, field):
    assert lone_surrogate(json.loads(json.dumps(row))) == field


@pytest.mark.parametrize("row", [
    {"prompt": "caf\u00e9 \U0001F600", "completion": "\u4e2d\u6587"},  # a surrogate pair is one character
    {"n": 1, "x": None, "y": [True, 2.5]},
])
def test_valid_text_passes(row):
    assert lone_surrogate(json.loads(json.dumps(row))) is None
    check_unicode(row)


def test_the_first_field_in_file_order_is_named():
    assert lone_surrogate({"a": ["ok", "\ud800"], "b": "\ud800"}) == "a[1]"


def test_nesting_as_deep_as_the_json_parser_allows_is_walked():
    deep = json.loads("[" * 900 + '"\\ud800"' + "]" * 900)
    assert lone_surrogate(deep) == "[0]" * 900


def test_check_unicode_is_one_line_naming_file_line_and_field():
    with pytest.raises(InputError) as caught:
        check_unicode({"prompt": "\ud800", "completion": "b"}, path="f.jsonl", line=3)
    assert str(caught.value) == "f.jsonl:3 field 'prompt': invalid unicode: lone surrogate"
