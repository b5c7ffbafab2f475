"""Rows -> token ids and labels within `max_length`, with the numbers `train validate` reports."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from chatkit.errors import DataError
from chatkit.training.formats import Row
from chatkit.training.masking import Encoded
from chatkit.training.trim import trim_row


@dataclass
class Prepared:
    examples: list[Encoded] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line of each example
    lengths: list[int] = field(default_factory=list)  # every row's length before trimming
    trimmed: list[int] = field(default_factory=list)  # lines whose passages were trimmed to fit
    too_long: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens) that cannot fit
    errors: list[tuple[int, str]] = field(default_factory=list)  # template refused the row

    @property
    def trained_tokens(self) -> int:
        return sum(e.trained_tokens for e in self.examples)

    def length_stats(self) -> dict[str, int]:
        if not self.lengths:
            return {}
        ordered = sorted(self.lengths)
        return {"min": ordered[0], "median": int(statistics.median(ordered)),
                "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], "max": ordered[-1]}

    def as_records(self) -> list[dict[str, list[int]]]:
        return [{"input_ids": e.input_ids, "labels": e.labels} for e in self.examples]


def prepare(tokenizer: Any, rows: list[Row], max_length: int) -> Prepared:
    out = Prepared()
    for row in rows:
        try:
            outcome = trim_row(tokenizer, row.as_messages(), max_length)
        except DataError as exc:
            out.errors.append((row.line, exc.message))
            continue
        out.lengths.append(outcome.tokens)
        if outcome.encoded is None:
            out.too_long.append((row.line, outcome.tokens))
            continue
        if outcome.trimmed:
            out.trimmed.append(row.line)
        out.examples.append(outcome.encoded)
        out.lines.append(row.line)
    return out


def lines_text(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")
