"""What the rest of chatkit calls: open a searcher over named collections, find collections, load the embedder."""

from __future__ import annotations

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


def open_collection_for_search(col: Collection, embedder: Embedder) -> Collection:
    if not col.exists:
        raise CollectionError(f"collection '{col.name}' does not exist", missing_hint(col.name))
    if col.store.counts()["chunks"] == 0:
        raise CollectionError(f"collection '{col.name}' is empty", missing_hint(col.name))
    col.check_embedder(embedder.key)
    col.load_indexes(embedder.dim, persist=True)
    return col


def open_searcher(settings: Settings, paths: Paths, collections: list[str], embedder: Embedder | None = None) -> Searcher:
    """A searcher over the named collections; a missing or empty one is a CollectionError."""
    from chatkit.retrieval.searcher import Searcher

    if not collections:
        raise CollectionError("no collection to search", "build one with `chatkit index add PATH --collection NAME`")
    embedder = embedder or load_embedder(settings)
    opened = [open_collection_for_search(collection(settings, paths, name), embedder) for name in collections]
    return Searcher(embedder, opened, settings.retrieval)


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
