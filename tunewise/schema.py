"""Versioned artifacts: stamping, reading and validating the files stages exchange.

Every JSON/YAML artifact carries `"schema": "tunewise/<kind>/v1"` and the tunewise
version (DESIGN.md, "The artifacts").  Readers refuse unknown schema versions, unknown
keys and wrong types with one line naming the file and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

from tunewise import __version__
from tunewise.errors import InputError, first_line

KINDS = ("estimate", "advice", "plan", "run", "eval", "prompt")


def schema_id(kind: str) -> str:
    assert kind in KINDS, kind
    return f"tunewise/{kind}/v1"


def stamp(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Return `body` with the schema id and tunewise version first."""
    return {"schema": schema_id(kind), "tunewise_version": __version__, **body}


def check_schema(obj: Any, kind: str, path: str | Path) -> dict[str, Any]:
    """Ensure `obj` is a mapping stamped with this kind's schema id."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a mapping, got {type(obj).__name__}", path=path)
    found = obj.get("schema")
    if found != schema_id(kind):
        raise InputError(
            f"unsupported schema {found!r}; this tunewise reads {schema_id(kind)!r}",
            path=path,
            field="schema",
        )
    return obj


class _UniqueKeyLoader:
    """A yaml SafeLoader that rejects duplicate keys (PyYAML silently keeps the last)."""

    @staticmethod
    def make():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def construct_mapping(loader, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = loader.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

        Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
        return Loader


def check_number(name: str, value: float | None, *, optional: bool = False, zero_ok: bool = False) -> None:
    """`value` is a finite number above zero (or at least zero with `zero_ok`); None passes
    when `optional`; else one InputError naming `name`.  Written with math.isfinite so that
    NaN and infinity fail too (they would print `$inf` or write invalid JSON)."""
    if value is None and optional:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        wanted = "a finite number >= 0" if zero_ok else "a positive finite number"
        raise InputError(f"must be {wanted}, got {value!r}", field=name)


def read_yaml(path: str | Path) -> Any:
    """Load YAML safely (no object construction, duplicate keys rejected)."""
    import yaml

    path = Path(path)
    text = _read_text(path)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader.make())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise InputError(f"invalid YAML: {problem}", path=path, line=line) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", path=path) from None
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise InputError(f"invalid YAML: {_first_clause(exc)}", path=path) from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    text = _read_text(path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(json_problem(exc), path=path, line=getattr(exc, "lineno", None)) from None


def json_problem(exc: BaseException) -> str:
    """One line for what json.loads refused: a syntax error (with its column), a nesting
    too deep for the parser, or an integer beyond Python's 4300-digit conversion limit."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {_first_clause(exc)}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any) -> str | None:
    """The field path ("prompt", "messages[0].content") of the first string or key in a parsed
    JSON document that holds a lone UTF-16 surrogate ("" for a bare string), else None.

    json.loads accepts an escaped lone surrogate such as "\\ud800" (a valid pair becomes one
    character), but it is no character: the text cannot be encoded as UTF-8, and fails far
    from the file (a TypeError inside a tokenizer, a failed training run).  Walked with a
    stack, not recursion: parsed JSON may nest as deep as the parser allows.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            fields = [(_join(where, str(key)), value) for key, value in item.items()]
            bad_key = next((f for f, _ in fields if _SURROGATE.search(f)), None)
            if bad_key is not None:
                return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", bad_key)  # printable
            stack.extend(reversed(fields))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_unicode(value: Any, *, path: str | Path | None = None, line: int | None = None) -> None:
    """Refuse parsed JSON holding a lone surrogate (see lone_surrogate) in one line naming the
    file, line and field."""
    where = lone_surrogate(value)
    if where is not None:
        raise InputError("invalid unicode: lone surrogate", path=path, line=line, field=where or None)


def _first_clause(exc: BaseException) -> str:
    """Python's digit-limit ValueError, up to its advice on sys.set_int_max_str_digits."""
    return str(exc).split(";")[0]


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, found a directory", path=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None


def from_mapping(cls: type, data: Any, path: str | Path | None = None, prefix: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types.

    Nested dataclasses, `list[...]`, `dict[...]`, `X | None` and Literal-free scalar
    types are checked; `__post_init__` runs its own range checks afterwards.
    """
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", path=path, field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names - {"schema", "tunewise_version"})
    if unknown:
        raise InputError(f"unknown key(s): {', '.join(unknown)}", path=path, field=prefix + unknown[0])
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in data:
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError("missing required field", path=path, field=prefix + f.name)
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], path, prefix + f.name)
    try:
        return cls(**kwargs)
    except InputError as exc:
        exc.path = exc.path or (str(path) if path else None)
        if exc.field and prefix and not exc.field.startswith(prefix):
            exc.field = prefix + exc.field
        raise


def _coerce(hint: Any, value: Any, path, field: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, path, field)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, path, prefix=field + ".")
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"expected a list, got {type(value).__name__}", path=path, field=field)
        return [_coerce(args[0], v, path, f"{field}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {type(value).__name__}", path=path, field=field)
        return {k: _coerce(args[1], v, path, f"{field}.{k}") for k, v in value.items()} if args else value
    if origin is typing.Literal:
        if value not in args:
            raise InputError(f"expected one of {list(args)}, got {value!r}", path=path, field=field)
        return value
    return _scalar(hint, value, path, field)


def _union(args: tuple, value: Any, path, field: str):
    """The first member of `X | Y | None` that accepts the value; else the first member's error."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _coerce(arg, value, path, field)
        except InputError as exc:
            errors.append(exc)
    raise errors[0]


def _scalar(hint: Any, value: Any, path, field: str):
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is dict and isinstance(value, dict):
        return value
    if hint is list and isinstance(value, list):
        return value
    if isinstance(hint, type) and issubclass(hint, str) and hint is not str:
        # A StrEnum: accept its value.
        try:
            return hint(value)
        except ValueError:
            valid = ", ".join(str(m.value) for m in hint)  # type: ignore[attr-defined]
            raise InputError(f"expected one of {valid}, got {value!r}", path=path, field=field) from None
    if isinstance(hint, type):
        ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
        if not ok:
            raise InputError(
                f"expected {hint.__name__}, got {type(value).__name__} {value!r}"[:200], path=path, field=field
            )
    return value


def to_mapping(obj: Any) -> Any:
    """dataclasses.asdict that also turns enums into their values."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    if isinstance(obj, str):
        return str(obj)
    return obj
