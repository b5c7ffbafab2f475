"""Read a JSONL training file: every row checked, every problem reported with its line number."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chatkit.errors import DataError
from chatkit.inputs import json_lines, require_input_file
from chatkit.models import file_sha256
from chatkit.training.formats import Row, RowError, normalise


@dataclass
class LoadedFile:
    path: Path
    rows: list[Row] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    duplicates: list[int] = field(default_factory=list)  # lines repeating an earlier row
    sha256: str = ""

    @property
    def formats(self) -> dict[str, int]:
        return dict(Counter(r.fmt for r in self.rows))

    def first_error(self) -> str:
        line, msg = self.errors[0]
        return f"line {line}: {msg}"


HINT = "check the path; `chatkit conversations export --out FILE` writes one"


def require_file(path: Path) -> None:
    require_input_file(path, "training file", HINT)


def load_file(path: Path) -> LoadedFile:
    """Parse every line; bad rows are collected, not raised, so one run reports them all."""
    require_file(path)
    out = LoadedFile(path, sha256=file_sha256(path))
    seen: set[tuple[tuple[str, str], ...]] = set()
    for parsed in json_lines(path, "training file", HINT):
        n, obj = parsed.line, parsed.value
        if parsed.error:
            out.errors.append((n, parsed.error))
            continue
        try:
            row = normalise(obj, n)
        except RowError as exc:
            out.errors.append((n, str(exc)))
            continue
        if row.messages in seen:
            out.duplicates.append(n)
        seen.add(row.messages)
        out.rows.append(row)
    return out


def load_clean(path: Path) -> LoadedFile:
    """For training: refuse a file with any bad row, or with none usable, in one line."""
    loaded = load_file(path)
    if not loaded.rows:
        raise no_usable_rows(loaded)
    if loaded.errors:
        more = f" and {len(loaded.errors) - 1} more" if len(loaded.errors) > 1 else ""
        raise DataError(f"{path}: {loaded.first_error()}{more}", f"`chatkit train validate {path}` lists every bad row")
    return loaded


def no_usable_rows(loaded: LoadedFile) -> DataError:
    why = f" ({len(loaded.errors)} bad; first: {loaded.first_error()})" if loaded.errors else " (the file is empty)"
    return DataError(f"{loaded.path}: no usable rows{why}",
                     "each line must be a JSON row with a user turn and an assistant turn; `chatkit train validate FILE` lists the problems")
