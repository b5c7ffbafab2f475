"""The home of FAISS: vectors by chunk id, exact (flat) or HNSW past a size threshold."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class IndexParams:
    ann_threshold: int = 50000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80

    def kind_for(self, n: int) -> str:
        return "hnsw" if n > self.ann_threshold else "flat"


@contextmanager
def _single_thread() -> Iterator[None]:
    """One query is too little work to split: OpenMP's hand-off costs more than the search itself,
    and far more on a busy machine. Bulk adds and HNSW construction keep all threads."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    def __init__(self, index: Any, kind: str) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def empty(cls, dim: int, kind: str, params: IndexParams) -> VectorIndex:
        import faiss

        inner: Any
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = params.hnsw_ef_construction
            inner.hnsw.efSearch = params.hnsw_ef_search
        else:
            inner = faiss.IndexFlatIP(dim)
        return cls(faiss.IndexIDMap(inner), kind)

    @classmethod
    def load(cls, path: Path, params: IndexParams) -> VectorIndex:
        import faiss

        index: Any = faiss.read_index(str(path))
        inner: Any = faiss.downcast_index(index.index)
        kind = "hnsw" if isinstance(inner, faiss.IndexHNSWFlat) else "flat"
        if kind == "hnsw":
            inner.hnsw.efSearch = params.hnsw_ef_search
        return cls(index, kind)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: Any, vectors: Any) -> None:
        import numpy as np

        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), np.asarray(ids, dtype="int64"))

    def remove(self, ids: Any) -> bool:
        """False when this kind cannot remove (HNSW): the caller rebuilds instead."""
        import numpy as np

        if not len(ids):
            return True
        if self.kind == "hnsw":
            return False
        self.index.remove_ids(np.asarray(ids, dtype="int64"))
        return True

    def search(self, query: Any, n: int) -> tuple[Any, Any]:
        """(chunk ids, cosine similarities) of the `n` nearest vectors to one unit-length query."""
        import numpy as np

        n = min(n, self.ntotal)
        if n <= 0:
            return np.zeros(0, dtype="int64"), np.zeros(0, dtype="float32")
        with _single_thread():
            sims, ids = self.index.search(np.asarray(query, dtype="float32").reshape(1, -1), n)
        keep = ids[0] >= 0
        return ids[0][keep], sims[0][keep]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))
