"""A strip above the status bar while a folder is being indexed: stage and progress bar."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, ProgressBar

STAGES = {"parse": "parsing", "embed": "embedding", "index": "indexing"}


class IndexProgress(Horizontal):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stages: dict[str, tuple[int, int | None]] = {}

    def compose(self):  # type: ignore[no-untyped-def]
        yield Label("", id="index-stage")
        yield ProgressBar(id="index-bar", show_eta=True)

    def begin(self, folder: str, collection: str) -> None:
        self.display = True
        self.stages = {}
        self.query_one("#index-stage", Label).update(Content.from_markup("indexing [b]$c[/]", c=collection))
        self.query_one(ProgressBar).update(total=None, progress=0)

    def advance(self, stage: str, done: int, total: int | None) -> None:
        self.stages[stage] = (done, total)
        count = f" {done}/{total}" if total else ""
        self.query_one("#index-stage", Label).update(STAGES.get(stage, stage) + count)
        self.query_one(ProgressBar).update(total=total, progress=done)

    def end(self) -> None:
        self.display = False
