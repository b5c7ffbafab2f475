"""Terminal output of the index, search and eval verbs: rich progress bars, tables, highlighted snippets."""

from __future__ import annotations

import re
from typing import Any

from chatkit.types import Hit


class RichReporter:
    """Progress bars on stderr: files parsed (docs/s) and chunks embedded (chunks/s); warnings above them."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                                 transient=False, disable=not console.is_terminal)
        self.tasks: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self.progress.start()

    def start(self, name: str, total: int | None, unit: str) -> None:
        if name in self.tasks:
            return
        labels = {"parse": "parsing", "embed": "embedding", "index": "indexing"}
        self.units[name] = unit
        self.tasks[name] = self.progress.add_task(labels.get(name, name), total=total, rate="")

    def advance(self, name: str, n: int = 1) -> None:
        task_id = self.tasks.get(name)
        if task_id is None:
            return
        self.progress.advance(task_id, n)
        task = self.progress.tasks[task_id]
        speed = task.speed
        unit = "docs" if self.units[name] == "files" else self.units[name]
        self.progress.update(task_id, rate=f"{speed:,.1f} {unit}/s" if speed else "")

    def warn(self, message: str) -> None:
        self.progress.console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True)

    def close(self) -> None:
        for task_id in self.tasks.values():
            task = self.progress.tasks[task_id]
            if task.total is None:
                self.progress.update(task_id, total=task.completed or 1, completed=task.completed or 1)
        self.progress.stop()


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def snippet(text: str, terms: list[str], width: int = 240) -> tuple[str, list[tuple[int, int]]]:
    """A window of `text` around the first matching word, and the spans of every match inside it."""
    flat = " ".join(text.split())
    pattern = _terms_pattern(terms)
    first = pattern.search(flat) if pattern else None
    start = max(0, (first.start() if first else 0) - width // 3)
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    window = flat[start : start + width]
    prefix = "…" if start else ""
    suffix = "…" if start + width < len(flat) else ""
    spans = [(m.start() + len(prefix), m.end() + len(prefix)) for m in pattern.finditer(window)] if pattern else []
    return f"{prefix}{window}{suffix}", spans


def _terms_pattern(terms: list[str]) -> re.Pattern[str] | None:
    words = sorted({t for t in terms if len(t) > 1}, key=len, reverse=True)
    if not words:
        return None
    # Stems match the start of a word: 'run' highlights 'running'.
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\w*", re.IGNORECASE)


def query_words(query: str) -> list[str]:
    from chatkit.retrieval.lexical import analyze

    stems = set(analyze(query))
    # Highlight the query's own words and their stems, but not its stopwords.
    return sorted({w for w in re.findall(r"\w\w+", query.lower()) if analyze(w)} | stems)


def print_hits(console: Any, query: str, hits: list[Hit], mode: str) -> None:
    from rich.text import Text

    if not hits:
        console.print("no results")
        return
    terms = query_words(query)
    for hit in hits:
        c = hit.chunk
        head = Text()
        head.append(f"{hit.rank:>2}. ", style="bold")
        head.append(c.title or c.doc_id, style="bold cyan")
        scores = f"  score {hit.score:.4f}"
        if hit.dense_score is not None:
            scores += f"  cos {hit.dense_score:.3f}"
        if hit.bm25_score is not None:
            scores += f"  bm25 {hit.bm25_score:.2f}"
        head.append(scores, style="dim")
        console.print(head)
        where = f"{c.source}" + (f"  p.{c.page}" if c.page else "") + f"  [{hit.collection}] {c.doc_id}#{c.ordinal}"
        console.print(Text("    " + where, style="green"))
        if c.heading:
            console.print(Text("    § " + c.heading, style="magenta"))
        text, spans = snippet(c.text, terms)
        body = Text("    " + text)
        for a, b in spans:
            body.stylize("bold yellow", a + 4, b + 4)
        console.print(body)
        console.print()


def hit_json(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {"rank": hit.rank, "score": hit.score, "dense_score": hit.dense_score, "bm25_score": hit.bm25_score,
            "collection": hit.collection, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "ordinal": c.ordinal,
            "title": c.title, "source": c.source, "heading": list(c.heading_path), "page": c.page,
            "char_start": c.char_start, "char_end": c.char_end, "text": c.text}
