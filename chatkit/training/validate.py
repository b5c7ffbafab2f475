"""What a training file holds, what is wrong with it, and what will be trained (`chatkit train validate` prints it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.training.masking import end_of_turn
from chatkit.training.prepare import Prepared, prepare
from chatkit.training.rows import LoadedFile, load_file, no_usable_rows


@dataclass
class Report:
    loaded: LoadedFile
    prepared: Prepared
    max_length: int
    end_of_turn: str

    @property
    def bad_rows(self) -> list[tuple[int, str]]:
        return sorted(self.loaded.errors + self.prepared.errors)

    @property
    def ok(self) -> bool:
        return not self.bad_rows and bool(self.prepared.examples)

    def as_json(self) -> dict[str, Any]:
        p = self.prepared
        total = sum(len(e) for e in p.examples)
        return {
            "file": str(self.loaded.path), "rows": len(self.loaded.rows) + len(self.loaded.errors),
            "usable": len(p.examples), "formats": self.loaded.formats,
            "errors": [{"line": n, "error": m} for n, m in self.bad_rows],
            "duplicates": self.loaded.duplicates, "max_length": self.max_length, "tokens": p.length_stats(),
            "trimmed": p.trimmed, "too_long": [{"line": n, "tokens": t} for n, t in p.too_long],
            "trained_tokens": p.trained_tokens, "total_tokens": total, "end_of_turn": self.end_of_turn,
        }


def validate_file(path: Path, tokenizer: Any, max_length: int) -> Report:
    loaded = load_file(path)
    if not loaded.rows:
        raise no_usable_rows(loaded)
    prepared = prepare(tokenizer, loaded.rows, max_length)
    return Report(loaded, prepared, max_length, end_of_turn(tokenizer))
