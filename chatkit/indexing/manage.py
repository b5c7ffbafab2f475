"""Open, inspect, shrink and delete collections: the data behind `chatkit index ls|stats|rm|drop`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import CollectionError, InputError
from chatkit.retrieval.collection import Collection

DEFAULT_COLLECTION = "default"


def open_collection(settings: Settings, paths: Paths, name: str | None, must_exist: bool = True) -> Collection:
    from chatkit.retrieval.service import collection, missing_hint

    col = collection(settings, paths, name or DEFAULT_COLLECTION)
    if must_exist and not col.exists:
        raise CollectionError(f"collection '{col.name}' does not exist", missing_hint(col.name))
    return col


def collection_rows(settings: Settings, paths: Paths) -> list[dict[str, Any]]:
    """One row per collection: its counts and embedder."""
    from chatkit.retrieval.service import list_collections

    rows = []
    for name in list_collections(paths):
        col = open_collection(settings, paths, name)
        try:
            rows.append({"collection": name, **col.store.counts(), "embedder": col.store.meta("embedder")})
        finally:
            col.close()
    return rows


def collection_stats(col: Collection) -> dict[str, Any]:
    store = col.store
    counts = store.counts()
    vectors = None
    kind = None
    fresh = col.index_files_fresh()
    if fresh:
        from chatkit.retrieval.vectors import VectorIndex

        gen = store.generation
        vi = VectorIndex.load(col.folder / f"vectors-{gen}.faiss", col.params)
        vectors, kind = vi.ntotal, vi.kind
    return {"collection": col.name, **counts, "vectors": vectors, "index": kind, "indexes_fresh": fresh,
            "embedder": store.meta("embedder"), "dim": int(store.meta("dim") or 0), "generation": store.generation,
            "size_bytes": col.size_on_disk(), "path": str(col.folder)}


def remove_documents(col: Collection, doc_ids: Sequence[str], source: str | None,
                     say: Callable[[str], None] | None = None) -> list[str]:
    """Remove documents by id, or every document read from `source`; returns the removed doc ids."""
    if not doc_ids and not source:
        raise InputError("give DOC_ID... or --source PATH", "`chatkit index ls --collection NAME` lists the documents")
    embedder_dim = int(col.store.meta("dim") or 0)
    lock = col.acquire(say=say)
    try:
        col.begin_write()
        store = col.store
        if source:
            resolved = str(Path(source).expanduser().resolve())
            docs = store.documents(resolved)
            if not docs and store.source(resolved) is None:
                raise CollectionError(f"no document from source {source} in '{col.name}'", "`chatkit index ls` lists sources")
            change = store.remove_sources([resolved])
            removed = [d.doc_id for d in docs]
        else:
            unknown = [d for d in doc_ids if store.document(d) is None]
            if unknown:
                raise CollectionError(f"no document '{unknown[0]}' in collection '{col.name}'",
                                      f"`chatkit index ls --collection {col.name}` lists the doc ids")
            change = store.remove_documents(list(doc_ids))
            removed = list(doc_ids)
        col.finish_write([change], embedder_dim)
    finally:
        lock.release()
    return removed


def drop_collection(col: Collection, say: Callable[[str], None] | None = None) -> dict[str, int]:
    """Delete the collection; returns the counts it had."""
    lock = col.acquire(say=say)
    try:
        counts: dict[str, int] = col.store.counts()
        col.drop()
    finally:
        lock.release()
    return counts
