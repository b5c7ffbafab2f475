"""`index rebuild`: re-embed every stored chunk with the configured embedder and rebuild FAISS and BM25."""

from __future__ import annotations

import time
from typing import Any

from chatkit.config import Paths
from chatkit.indexing.report import QuietReporter, Reporter
from chatkit.retrieval.cache import EmbeddingCache
from chatkit.retrieval.collection import Collection
from chatkit.retrieval.embedder import Embedder


def rebuild(paths: Paths, col: Collection, embedder: Embedder, reporter: Reporter | None = None, say: Any = None) -> dict[str, Any]:
    reporter = reporter or QuietReporter()
    started = time.perf_counter()
    lock = col.acquire(say=say)
    try:
        col.begin_write()
        store = col.store
        cache = EmbeddingCache(paths.cache / "embeddings.sqlite")
        rows = list(store.chunk_hashes())
        reporter.start("embed", len(rows), "chunks")
        found = cache.get(embedder.key, [h for _, h, _ in rows])
        todo = {h: t for _, h, t in rows if h not in found}
        reporter.advance("embed", len(rows) - len(todo))
        embedded = 0
        order = sorted(todo, key=lambda h: len(todo[h]))
        step = embedder.batch_size * 16
        for start in range(0, len(order), step):
            part = order[start : start + step]
            vecs = embedder.encode([todo[h] for h in part], on_batch=lambda n: reporter.advance("embed", n))
            fresh = [(h, vecs[i].tobytes()) for i, h in enumerate(part)]
            cache.put(embedder.key, fresh)  # a crash from here on loses no embedding work
            found.update(fresh)
            embedded += len(part)
        # One transaction: the store never holds vectors of two embedders at once.
        change_gen = store.replace_vectors([(i, found[h]) for i, h, _ in rows], embedder.key, embedder.dim)
        reporter.start("index", None, "steps")
        col.vectors = None
        col.apply([], embedder.dim)
        reporter.close()
        return {"collection": col.name, "chunks": len(rows), "embedded": embedded, "cached": len(rows) - embedded,
                "embedder": embedder.key, "generation": change_gen, "seconds": round(time.perf_counter() - started, 2)}
    finally:
        lock.release()
