"""`chatkit train validate`: what a training file holds, what is wrong with it, and what will be trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.training.masking import IGNORE, Encoded, end_of_turn
from chatkit.training.prepare import Prepared, lines_text, prepare
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


def print_report(console: Any, report: Report, tokenizer: Any) -> None:
    loaded, p = report.loaded, report.prepared
    formats = ", ".join(f"{k} {v}" for k, v in sorted(loaded.formats.items()))
    bad = report.bad_rows
    console.print(f"[bold]{loaded.path}[/]: {len(loaded.rows) + len(loaded.errors)} rows ({formats}), "
                  f"{len(p.examples)} usable, {len(bad)} bad", highlight=False)
    for line, msg in bad[:50]:
        console.print(f"  [red]line {line}[/]: {msg}", highlight=False)
    if len(bad) > 50:
        console.print(f"  ... and {len(bad) - 50} more")
    if loaded.duplicates:
        console.print(f"  [yellow]{len(loaded.duplicates)} duplicate rows[/] (lines {lines_text(loaded.duplicates)}): "
                      "they are trained more than once", highlight=False)
    stats = p.length_stats()
    if stats:
        console.print(f"tokens per row (max_length {report.max_length}): min {stats['min']}, median {stats['median']}, "
                      f"p95 {stats['p95']}, max {stats['max']}", highlight=False)
    if p.trimmed:
        console.print(f"  {len(p.trimmed)} rows over max_length fit after trimming passages (lines {lines_text(p.trimmed)})", highlight=False)
    if p.too_long:
        worst = ", ".join(f"{n} ({t} tokens)" for n, t in p.too_long[:10])
        console.print(f"  [yellow]{len(p.too_long)} rows do not fit even with passages trimmed and will be skipped[/]: "
                      f"lines {worst}; raise training.max_length or shorten them", highlight=False)
    total = sum(len(e) for e in p.examples)
    if total:
        console.print(f"trained tokens: {p.trained_tokens} of {total} ({100 * p.trained_tokens / total:.0f}%), "
                      f"the assistant's turns only", highlight=False)
    if report.end_of_turn:
        console.print(f"assistant turns end with {report.end_of_turn!r}, which is trained so the model learns to stop", highlight=False)
    else:
        console.print("[yellow]the chat template puts no end-of-turn token after the assistant's words: "
                      "the model will not learn to stop[/]")
    if p.examples:
        console.print(f"\n[bold]line {p.lines[0]} as the model sees it[/] ([green]green[/] = trained, dim = context only):")
        console.print(example_text(p.examples[0]))


def example_text(example: Encoded, keep: int = 300) -> Any:
    """The rendered row, trained characters in green; long context runs are shortened in the middle."""
    from rich.text import Text

    trained = [False] * len(example.text)
    for (start, end), label in zip(example.offsets, example.labels, strict=True):
        if label != IGNORE:
            trained[start:end] = [True] * (end - start)
    out = Text()
    i = 0
    while i < len(example.text):
        j = i
        while j < len(example.text) and trained[j] == trained[i]:
            j += 1
        piece = example.text[i:j]
        if not trained[i] and len(piece) > 2 * keep + 40:
            piece = f"{piece[:keep]}\n  [... {len(piece) - 2 * keep} characters ...]\n{piece[-keep:]}"
        out.append(piece, style="bold green" if trained[i] else "dim")
        i = j
    return out
