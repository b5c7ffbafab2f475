"""The one way to read a user's input file: a missing path, a folder, binary or non-UTF-8 bytes, bad JSON,
absurd nesting and wrong field types all become a `DataError`/`InputError` naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.errors import DataError, InputError

# Real rows (chat messages, QA items, BEIR queries) nest a few levels; past this a row is hostile or broken,
# and code that walks it (hashing, templates, json.dumps) would hit Python's recursion limit.
MAX_DEPTH = 64


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line: its parsed value, or why it could not be parsed (then `value` is None)."""

    line: int
    value: Any
    error: str = ""


def require_input_file(path: Path, what: str = "file", hint: str = "") -> Path:
    """`path` if it is a readable regular file; otherwise one error that says which of the usual mistakes it is."""
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, not a file", hint or "pass the file inside it")
    if not path.exists():
        raise InputError(f"{what} not found: {path}", hint or "check the path")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a regular file", hint or "pass a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}", hint or "check its permissions") from None
    return path


def depth_of(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion (so a hostile row cannot overflow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_line(raw: bytes) -> tuple[Any, str]:
    """(value, "") or (None, why not): decoding, syntax and nesting problems, never an exception."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    if "\x00" in text:
        return None, "binary data (NUL bytes), not JSON text"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"bad JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, f"nested more than {MAX_DEPTH} levels deep"
    if depth_of(value) > MAX_DEPTH:
        return None, f"nested more than {MAX_DEPTH} levels deep"
    return value, ""


def json_lines(path: Path, what: str = "file", hint: str = "") -> Iterator[JsonLine]:
    """Every non-blank line of a JSONL file with its 1-based number; bad lines carry their error, so a caller
    can collect them all (`train validate`) or stop at the first (`read_jsonl`)."""
    require_input_file(path, what, hint)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}", hint or "check its permissions") from None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        value, error = parse_json_line(line)
        yield JsonLine(number, value, error)


def read_jsonl(path: Path, what: str = "file", hint: str = "") -> Iterator[tuple[int, Any]]:
    """(line number, value) for each row; the first bad line raises `DataError` naming the file and line."""
    for row in json_lines(path, what, hint):
        if row.error:
            raise DataError(f"{path} line {row.line}: {row.error}", hint or "one JSON object per line")
        yield row.line, row.value


def typed_field(row: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`row[key]` if it has the expected type, else a `DataError` at `where` ("FILE line N")."""
    value = row.get(key)
    # bool is an int to Python, but `"doc_ids": true` is as wrong as `"doc_ids": 3`.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise DataError(f"{where}: '{key}' must be {_kind_names(kind)}, not {_json_type(value)}",
                        "fix the row (see corpora/README.md for the format)")
    return value


def string_list(row: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list of strings (`doc_ids`, `keywords`): a bare string or a number is refused, not split into characters."""
    value = typed_field(row, key, list, where)
    if not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: '{key}' must be a list of strings", "e.g. [\"doc-1\", \"doc-2\"]")
    return tuple(value)


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(_json_type_of(k) for k in _kinds(kind))


def _json_type_of(kind: type) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "true or false", int: "a number",
            float: "a number"}.get(kind, kind.__name__)


def _json_type(value: Any) -> str:
    if value is None:
        return "missing or null"
    return _json_type_of(type(value))
