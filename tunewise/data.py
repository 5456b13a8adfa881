"""Reading user datasets: JSONL, JSON, CSV and Parquet in the common training shapes.

Shapes (detected per file from the first valid row, then enforced on every row):

    prompt_completion  {"prompt": str, "completion": str}
    messages           {"messages": [{"role": "user"|"assistant"|"system", "content": str}, ...]}
    text               {"text": str}
    preference         {"prompt": str, "chosen": str, "rejected": str}
                       (chosen/rejected may also be message lists, as trl accepts)

Pure Python (pandas only for Parquet, imported lazily): the advisor uses this too.
Errors name the file, the 1-based line (JSONL/CSV) or row index, and the field.  Text
must be Unicode: an escaped lone surrogate ("\\ud800", valid JSON) is refused as it is read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, first_line
from tunewise.schema import check_unicode, json_problem

FORMATS = ("prompt_completion", "messages", "text", "preference")
ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
MAX_LINE_BYTES = 16 * 1024 * 1024  # a single example beyond 16 MiB is malformed, not data


@dataclass(frozen=True)
class Problem:
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f" field '{self.field}'" if self.field else "") + f": {self.message}"


@dataclass
class Dataset:
    path: Path
    format: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line of each row
    problems: list[Problem] = field(default_factory=list)  # only in lenient mode

    def __len__(self) -> int:
        return len(self.rows)


def detect_format(row: dict[str, Any]) -> str | None:
    """The shape of one row, or None if it matches none."""
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


def load_dataset(path: str | Path, *, expect: str | tuple[str, ...] | None = None, strict: bool = True) -> Dataset:
    """Read and validate a dataset file.

    strict=True raises InputError at the first bad row (runners); strict=False collects
    problems and keeps the valid rows (the data profile reports them with line numbers).
    """
    path = Path(path)
    fmt: str | None = None
    data = Dataset(path=path, format="unknown")
    for line, row in iter_rows(path):
        try:
            if fmt is None:
                fmt = _first_format(row, path, line, expect)
            validate_row(row, fmt)
        except InputError as exc:
            if strict:
                raise InputError(exc.message, path=path, line=line, field=exc.field) from None
            data.problems.append(Problem(line, exc.field, exc.message))
            continue
        data.rows.append(row)
        data.lines.append(line)
    if fmt is None and not data.problems:
        raise InputError("no examples: the file is empty", path=path)
    data.format = fmt or "unknown"
    return data


def _first_format(row: dict, path: Path, line: int, expect) -> str:
    fmt = detect_format(row)
    if fmt is None:
        keys = ", ".join(sorted(row)) or "none"
        raise InputError(
            f"unrecognised example shape (keys: {keys}); expected prompt/completion, messages, text, "
            "or prompt/chosen/rejected",
            path=path,
            line=line,
        )
    allowed = (expect,) if isinstance(expect, str) else expect
    if allowed and fmt not in allowed:
        needs = " or ".join(allowed)
        missing = "chosen" if "preference" in allowed else None
        raise InputError(f"this method needs {needs} data, found {fmt}", path=path, line=line, field=missing)
    return fmt


def validate_row(row: dict[str, Any], fmt: str) -> None:
    """Raise InputError(field=...) if `row` is not a valid example of `fmt`."""
    if fmt == "prompt_completion":
        _text(row, "prompt", allow_empty=True)
        _text(row, "completion")
    elif fmt == "text":
        _text(row, "text")
    elif fmt == "messages":
        _messages(row.get("messages"), "messages", required=True)
    elif fmt == "preference":
        if isinstance(row.get("prompt"), list):
            _messages(row["prompt"], "prompt", required=True)
        else:
            _text(row, "prompt", allow_empty=True)
        for key in ("chosen", "rejected"):
            if isinstance(row.get(key), list):
                _messages(row[key], key, required=True)
            else:
                _text(row, key)
        if row["chosen"] == row["rejected"]:
            raise InputError("chosen and rejected are identical", field="rejected")
    else:  # pragma: no cover - guarded by FORMATS
        raise InputError(f"unknown format {fmt!r}")


def _text(row: dict, key: str, allow_empty: bool = False) -> None:
    if key not in row:
        raise InputError("missing", field=key)
    value = row[key]
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", field=key)
    if not allow_empty and not value.strip():
        raise InputError("empty", field=key)


def _messages(value: Any, key: str, required: bool) -> None:
    if not isinstance(value, list) or (required and not value):
        raise InputError("expected a non-empty list of {role, content} messages", field=key)
    for i, msg in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(msg, dict):
            raise InputError("expected a {role, content} mapping", field=where)
        if msg.get("role") not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, got {msg.get('role')!r}", field=f"{where}.role")
        if not isinstance(msg.get("content"), str):
            raise InputError("content must be a string", field=f"{where}.content")


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, row) for every record; malformed records raise InputError with the line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a data file, found a directory", path=path)
    suffix = path.suffix.lower()
    readers = {".jsonl": _iter_jsonl, ".json": _iter_json, ".csv": _iter_csv, ".parquet": _iter_parquet}
    if suffix not in readers:
        raise InputError(f"unsupported data file type {suffix or '(none)'}; use {', '.join(SUFFIXES)}", path=path)
    yield from readers[suffix](path)


def _bounded_lines(handle) -> Iterator[bytes]:
    """The file's lines, each read at most MAX_LINE_BYTES + 1 bytes at a time: a longer line
    is seen to be too long without ever being held whole (a multi-GB line would not fit)."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        yield raw


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(_bounded_lines(handle), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"line longer than {MAX_LINE_BYTES // 2**20} MiB", path=path, line=line_no)
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {exc.start})", path=path, line=line_no) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise InputError(json_problem(exc), path=path, line=line_no) from None
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=line_no)
            check_unicode(row, path=path, line=line_no)
            yield line_no, row


def _iter_json(path: Path) -> Iterator[tuple[int, dict]]:
    from tunewise.schema import read_json

    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]  # the {"data": [...]} convention of some exporters
    if not isinstance(data, list):
        raise InputError("expected a JSON array of objects (or use .jsonl)", path=path)
    for index, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise InputError(f"item {index}: expected an object, got {type(row).__name__}", path=path, line=index)
        check_unicode(row, path=path, line=index)
        yield index, row


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    # Decode the whole file first so an encoding error can name its line (a CSV data file
    # is read into memory by the trainer anyway).
    text = _decode_lines(path.read_bytes(), path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            return
        for row in reader:
            if None in row:
                raise InputError("more values than header columns", path=path, line=reader.line_num)
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    except csv.Error as exc:
        # The csv module's own count: DictReader.line_num is only updated after a row parses,
        # so it still names the previous row (the header: line 1) for an oversized field.
        raise InputError(f"invalid CSV: {exc}", path=path, line=reader.reader.line_num or None) from None


def _decode_lines(raw: bytes, path: Path) -> str:
    """UTF-8 text of `raw` (a leading BOM dropped); an invalid byte is reported with its line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=path, line=line) from None


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise InputError(f"unreadable Parquet: {first_line(exc)}", path=path) from None
    for index, row in enumerate(frame.to_dict(orient="records"), start=1):
        yield index, {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """numpy arrays/scalars from Parquet into plain Python (message lists arrive as arrays)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
