"""What the rest of chatkit calls: open a searcher over named collections, find collections, load the embedder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from chatkit.config import Paths, Settings
from chatkit.errors import CollectionError
from chatkit.retrieval.collection import Collection, check_name
from chatkit.retrieval.vectors import IndexParams
from chatkit.types import Chunk

if TYPE_CHECKING:
    from chatkit.retrieval.embedder import Embedder
    from chatkit.retrieval.searcher import Searcher

log = logging.getLogger("chatkit.retrieval")

_EMBEDDERS: dict[tuple[str, str, int], Embedder] = {}


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder, loaded once per process."""
    from chatkit.models import resolve_embedder
    from chatkit.retrieval.embedder import Embedder

    resolved = resolve_embedder(settings)
    key = (resolved.path, resolved.model_id, settings.retrieval.batch_size)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(resolved.path, resolved.model_id, settings.retrieval.batch_size)
    return _EMBEDDERS[key]


def index_params(settings: Settings) -> IndexParams:
    r = settings.retrieval
    return IndexParams(ann_threshold=r.ann_threshold, hnsw_m=r.hnsw_m, hnsw_ef_search=r.hnsw_ef_search)


def collection(settings: Settings, paths: Paths, name: str) -> Collection:
    return Collection(paths.collections / check_name(name), name, index_params(settings))


def list_collections(paths: Paths) -> list[str]:
    folder = paths.collections
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "store.sqlite").is_file())


def missing_hint(name: str) -> str:
    return f"build it with `chatkit index add PATH --collection {name}`"


def unusable_reason(col: Collection) -> str | None:
    """Why `col` cannot be searched ('does not exist', 'is being built', 'is empty'), or None."""
    if not col.exists:
        return "does not exist"
    if col.store.counts()["chunks"] == 0:
        # A first `index add` holds the writer lock until its first batch is stored.
        return "is being built" if col.being_written() else "is empty"
    return None


def _unusable_error(name: str, reason: str) -> CollectionError:
    if reason == "is being built":
        return CollectionError(f"collection '{name}' is being built", "wait for its `chatkit index add` to finish, then ask again")
    return CollectionError(f"collection '{name}' {reason}", missing_hint(name))


def open_collection_for_search(col: Collection, embedder: Embedder) -> Collection:
    reason = unusable_reason(col)
    if reason is not None:
        col.close()
        raise _unusable_error(col.name, reason)
    col.check_embedder(embedder.key)
    col.load_indexes(embedder.dim, persist=True)
    return col


def open_searcher(settings: Settings, paths: Paths, collections: list[str], embedder: Embedder | None = None) -> Searcher:
    """A searcher over the named collections. A missing one is a CollectionError; so is an empty or
    being-built one when it is the only one, else it is skipped (logged and listed in `Searcher.skipped`)."""
    from chatkit.retrieval.searcher import Searcher, SkippedCollection

    if not collections:
        raise CollectionError("no collection to search", "build one with `chatkit index add PATH --collection NAME`")
    cols = [collection(settings, paths, name) for name in dict.fromkeys(collections)]
    reasons = [unusable_reason(col) for col in cols]
    for col, reason in zip(cols, reasons, strict=True):
        if reason == "does not exist":  # a typo, not a state: never skipped
            _close_all(cols)
            raise _unusable_error(col.name, reason)
    skipped = tuple(SkippedCollection(col.name, reason) for col, reason in zip(cols, reasons, strict=True) if reason)
    if len(skipped) == len(cols):
        _close_all(cols)
        if len(cols) == 1:
            raise _unusable_error(skipped[0].name, skipped[0].reason)
        raise CollectionError("no collection can be searched: " + "; ".join(s.message for s in skipped),
                              "wait for running `chatkit index add` commands, or add documents to one of them")
    embedder = embedder or load_embedder(settings)
    opened: list[Collection] = []
    try:
        for col, reason in zip(cols, reasons, strict=True):
            if reason is None:
                opened.append(open_collection_for_search(col, embedder))
            else:
                col.close()
    except BaseException:
        _close_all(cols)
        raise
    for s in skipped:
        log.warning("%s: searching the other collections without it", s.message)
    return Searcher(embedder, opened, settings.retrieval, skipped=skipped)


def _close_all(cols: list[Collection]) -> None:
    for col in cols:
        col.close()


def open_searcher_at(settings: Settings, folder: Path, name: str, embedder: Embedder | None = None) -> Searcher:
    """A searcher over a collection kept outside the data dir's collections (e.g. an eval's cached corpus)."""
    from chatkit.retrieval.searcher import Searcher

    embedder = embedder or load_embedder(settings)
    col = open_collection_for_search(Collection(folder, name, index_params(settings)), embedder)
    return Searcher(embedder, [col], settings.retrieval)


def all_chunks(settings: Settings, paths: Paths, name: str) -> list[Chunk]:
    """Every chunk of a collection in index order (for data synthesis); a missing or empty one is a CollectionError."""
    col = collection(settings, paths, name)
    if not col.exists or col.store.counts()["chunks"] == 0:
        raise CollectionError(f"collection '{name}' {'is empty' if col.exists else 'does not exist'}", missing_hint(name))
    out: list[Chunk] = []
    for ids, _ in col.store.iter_embed_texts():
        found = col.store.chunks(ids)
        out.extend(found[i][0] for i in ids if i in found)
    col.close()
    return out
