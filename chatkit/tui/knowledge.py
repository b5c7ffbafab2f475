"""The knowledge base as the app sees it: list collections, open a searcher, stats, add a folder.

Imports of chatkit.retrieval/chatkit.indexing are lazy: the app starts (and tests run) without them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings


@dataclass(frozen=True)
class CollectionStats:
    name: str
    documents: int
    chunks: int
    sources: int
    bytes: int
    embedder: str


class ProgressReporter:
    """The indexing pipeline's Reporter protocol, forwarded to a callback the UI turns into a progress bar."""

    def __init__(self, on_progress: Callable[[str, int, int | None], None], on_warning: Callable[[str], None]) -> None:
        self.on_progress, self.on_warning = on_progress, on_warning
        self.done: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}

    def start(self, name: str, total: int | None, unit: str) -> None:
        self.done[name], self.totals[name] = 0, total
        self.on_progress(name, 0, total)

    def advance(self, name: str, n: int = 1) -> None:
        self.done[name] = self.done.get(name, 0) + n
        self.on_progress(name, self.done[name], self.totals.get(name))

    def warn(self, message: str) -> None:
        self.on_warning(message)

    def close(self) -> None:
        pass


class Knowledge:
    def __init__(self, settings: Settings, paths: Paths) -> None:
        self.settings, self.paths = settings, paths

    def collections(self) -> list[str]:
        from chatkit.retrieval.service import list_collections

        return list_collections(self.paths)

    def open_searcher(self, names: Sequence[str], embedder: Any = None) -> Any:
        from chatkit.retrieval.service import open_searcher

        return open_searcher(self.settings, self.paths, list(names), embedder=embedder)

    def stats(self) -> list[CollectionStats]:
        from chatkit.retrieval.service import collection

        out = []
        for name in self.collections():
            col = collection(self.settings, self.paths, name)
            try:
                c = col.store.counts()
                out.append(CollectionStats(name, c["documents"], c["chunks"], c["sources"], col.size_on_disk(),
                                           col.embedder_key or ""))
            finally:
                col.close()
        return out

    def add_folder(self, folder: Path, name: str, reporter: ProgressReporter, embedder: Any = None) -> str:
        """Index `folder` into collection `name`; returns the one-line summary."""
        from chatkit.errors import InputError
        from chatkit.indexing.pipeline import run_add
        from chatkit.retrieval.service import collection, load_embedder

        if not folder.exists():
            raise InputError(f"no such file or folder: {folder}", "give a path to a folder of documents")
        col = collection(self.settings, self.paths, name)
        try:
            summary = run_add(self.settings, self.paths, col, embedder or load_embedder(self.settings), [folder],
                              reporter=reporter, say=reporter.on_warning)
        finally:
            col.close()
        return str(summary.line())
