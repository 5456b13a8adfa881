"""Property tests: the data loader and the plan parser return a value or raise our own error.

Whatever bytes, text or YAML a user hands `tunewise.data.load_dataset` or
`tunewise.plan.load_plan`, the only exception allowed out is a TunewiseError (which the
CLI prints as one line).  A KeyError, TypeError or UnicodeDecodeError escaping is a bug.

    .venv/bin/python -m pytest tests/unit/test_fuzz_loaders.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunewise.data import load_dataset
from tunewise.errors import TunewiseError
from tunewise.plan import Plan, load_plan

EXAMPLES = 150  # per property; 8 properties -> 1,200 inputs per run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
KEYS = ["prompt", "completion", "messages", "text", "chosen", "rejected", "role", "content", "question"]
rowish = st.dictionaries(st.sampled_from(KEYS), json_values | st.lists(
    st.dictionaries(st.sampled_from(["role", "content"]), json_values, max_size=2), max_size=3), max_size=4)


def outcome(load, path: Path):
    """The value, or the TunewiseError raised; any other exception fails the test."""
    try:
        return load(path)
    except TunewiseError as exc:
        assert str(exc), "an error must say something"
        return exc


_FOLDER = tempfile.TemporaryDirectory(prefix="tw-fuzz-")  # removed when the interpreter exits


def write(suffix: str, data: bytes) -> Path:
    path = Path(_FOLDER.name) / f"input{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]),
       strict=st.booleans())
def test_arbitrary_bytes_load_or_raise_our_error(data, suffix, strict):
    outcome(lambda p: load_dataset(p, strict=strict), write(suffix, data))


@FUZZ
@given(text=st.text(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_arbitrary_text_loads_or_raises_our_error(text, suffix):
    outcome(load_dataset, write(suffix, text.encode("utf-8", errors="surrogatepass")))


@FUZZ
@given(rows=st.lists(rowish | json_values, min_size=1, max_size=5), strict=st.booleans(),
       expect=st.sampled_from([None, "preference", ("prompt_completion", "messages", "text")]))
def test_jsonl_rows_of_any_shape_load_or_raise_our_error(rows, strict, expect):
    text = "".join(json.dumps(row) + "\n" for row in rows)
    result = outcome(lambda p: load_dataset(p, strict=strict, expect=expect), write(".jsonl", text.encode()))
    if not isinstance(result, TunewiseError):
        assert len(result.rows) + len(result.problems) <= len(rows)


@FUZZ
@given(rows=st.lists(rowish, min_size=1, max_size=5))
def test_json_array_of_rows_loads_or_raises_our_error(rows):
    outcome(load_dataset, write(".json", json.dumps(rows).encode()))


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_a_plan(text):
    outcome(load_plan, write(".yaml", text.encode("utf-8", errors="surrogatepass")))


@FUZZ
@given(doc=json_values)
def test_arbitrary_yaml_document_as_a_plan(doc):
    outcome(load_plan, write(".yaml", yaml.safe_dump(doc).encode()))


VALID = Plan(method="lora", model="some/model").to_dict()  # type: ignore[arg-type]
PATHS = [("method",), ("model",), ("name",), ("settings", "batch_size"), ("settings", "epochs"),
         ("settings", "learning_rate"), ("settings", "precision"), ("settings", "lora_targets"),
         ("settings", "max_steps"), ("data",), ("data", "train"), ("hardware",), ("hardware", "count"),
         ("settings",), ("reasons",), ("estimate",), ("schema",)]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_a_valid_plan_with_fields_replaced_by_anything(changes):
    plan = json.loads(json.dumps(VALID))
    for path, value in changes:
        target = plan
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target.get(key), dict) else target
        target[path[-1]] = value
    result = outcome(load_plan, write(".yaml", yaml.safe_dump(plan).encode()))
    assert isinstance(result, Plan | TunewiseError)


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_plan(data):
    outcome(load_plan, write(".yaml", data))


def test_the_properties_can_fail():
    """The harness itself: a non-tunewise exception is not swallowed."""
    import pytest

    def boom(path):
        raise KeyError("x")

    with pytest.raises(KeyError):
        outcome(boom, Path("x"))


PATHOLOGICAL = {  # found while fuzzing: each escaped as RecursionError / ValueError before
    "deep.jsonl": b"[" * 5000 + b"\n",
    "deep.json": b"[" * 5000,
    "bigint.jsonl": b'{"prompt": "a", "completion": "b", "n": ' + b"1" * 5000 + b"}\n",
    "deep.yaml": b"schema: tunewise/plan/v1\nmethod: lora\nmodel: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "bigint.yaml": b"schema: tunewise/plan/v1\nmethod: lora\nmodel: m\nsettings: {seed: " + b"9" * 5000 + b"}\n",
}


def test_pathological_nesting_and_numbers_are_our_errors():
    import pytest

    for name, data in PATHOLOGICAL.items():
        load = load_plan if name.endswith(".yaml") else load_dataset
        with pytest.raises(TunewiseError, match="nested too deeply|4300 digits"):
            load(write(Path(name).suffix, data))
