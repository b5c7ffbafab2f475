"""Dense, BM25 and hybrid search over one or more open collections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatkit.config import RetrievalConfig
from chatkit.errors import InputError
from chatkit.retrieval.collection import Collection
from chatkit.retrieval.embedder import Embedder
from chatkit.retrieval.fusion import mix, rrf
from chatkit.retrieval.support import TermStatistics
from chatkit.types import Hit

MODES = ("dense", "bm25", "hybrid")

Key = tuple[int, int]  # (collection position, chunk id)


@dataclass(frozen=True)
class SkippedCollection:
    """A collection left out of a multi-collection search, and why ('is empty', 'is being built')."""

    name: str
    reason: str

    @property
    def message(self) -> str:
        return f"collection '{self.name}' {self.reason}"


@dataclass
class _Candidates:
    dense: dict[Key, float]
    bm25: dict[Key, float]
    bm25_all: list[Any]  # per collection: BM25 score of every chunk, or None when BM25 did not run


class Searcher:
    def __init__(self, embedder: Embedder, collections: list[Collection], config: RetrievalConfig,
                 skipped: tuple[SkippedCollection, ...] = ()) -> None:
        self.embedder = embedder
        self.collections = collections
        self.config = config
        self.skipped = skipped  # asked for but not searched (empty or being built); the caller may warn
        self._term_statistics: TermStatistics | None = None

    def term_statistics(self) -> TermStatistics:
        """BM25 document frequencies over all searched collections (computed once per searcher)."""
        if self._term_statistics is None:
            frequency: dict[str, int] = {}
            documents = 0
            for col in self.collections:
                if col.lexical is None:
                    continue
                for term, count in col.lexical.document_frequencies().items():
                    frequency[term] = frequency.get(term, 0) + count
                documents += len(col.lexical)
            self._term_statistics = TermStatistics(frequency, documents)
        return self._term_statistics

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        query = query.strip()
        if not query:
            raise InputError("the query is empty", "give some words to search for")
        k = k or self.config.k
        mode = (mode or self.config.mode).lower()
        if mode not in MODES:
            raise InputError(f"unknown search mode '{mode}'", "use dense, bm25 or hybrid")
        qvec = self.embedder.encode([query])[0]
        return self.search_vector(query, qvec, k, mode)

    def search_vector(self, query: str, qvec: Any, k: int, mode: str) -> list[Hit]:
        n = max(self.config.candidates, k)
        cands = self._candidates(query, qvec, n, mode)
        if mode == "dense":
            scores = cands.dense
        elif mode == "bm25":
            scores = cands.bm25
        elif self.config.fusion == "mix":
            dense = dict(cands.dense)
            missing = [key for key in cands.bm25 if key not in dense]
            dense.update(self._cosines(qvec, missing))
            bm25 = {key: self._bm25_of(cands, key) for key in set(cands.bm25) | set(dense)}
            scores = mix(dense, bm25, self.config.dense_weight)
        else:
            scores = rrf([_ranking(cands.dense), _ranking(cands.bm25)], self.config.rrf_k)
        top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return self._hits(top, qvec, cands, mode)

    def _candidates(self, query: str, qvec: Any, n: int, mode: str) -> _Candidates:
        import numpy as np

        dense: dict[Key, float] = {}
        bm25: dict[Key, float] = {}
        bm25_all: list[Any] = []
        for c, col in enumerate(self.collections):
            assert col.vectors is not None and col.lexical is not None
            if mode in ("dense", "hybrid"):
                ids, sims = col.vectors.search(qvec, n)
                dense.update({(c, int(i)): float(s) for i, s in zip(ids, sims, strict=True)})
            if mode in ("bm25", "hybrid") and len(col.lexical):
                scores = col.lexical.scores(query)
                bm25_all.append(scores)
                m = min(n, len(scores))
                top = np.argpartition(-scores, m - 1)[:m] if m < len(scores) else np.arange(len(scores))
                bm25.update({(c, int(col.lexical.ids[p])): float(scores[p]) for p in top if scores[p] > 0})
            else:
                bm25_all.append(None)
        return _Candidates(dense, bm25, bm25_all)

    def _bm25_of(self, cands: _Candidates, key: Key) -> float:
        if key in cands.bm25:
            return cands.bm25[key]
        scores = cands.bm25_all[key[0]] if key[0] < len(cands.bm25_all) else None
        lexical = self.collections[key[0]].lexical
        if scores is None or lexical is None:
            return 0.0
        pos = lexical.position(key[1])
        return float(scores[pos]) if pos is not None else 0.0

    def _cosines(self, qvec: Any, keys: list[Key]) -> dict[Key, float]:
        import numpy as np

        out: dict[Key, float] = {}
        by_col: dict[int, list[int]] = {}
        for c, i in keys:
            by_col.setdefault(c, []).append(i)
        for c, ids in by_col.items():
            for i, (_, blob) in self.collections[c].store.chunks(ids).items():
                out[(c, i)] = float(np.frombuffer(blob, dtype="float32") @ qvec)
        return out

    def _hits(self, top: list[tuple[Key, float]], qvec: Any, cands: _Candidates, mode: str) -> list[Hit]:
        import numpy as np

        rows: dict[Key, Any] = {}
        by_col: dict[int, list[int]] = {}
        for (c, i), _ in top:
            by_col.setdefault(c, []).append(i)
        for c, ids in by_col.items():
            for i, row in self.collections[c].store.chunks(ids).items():
                rows[(c, i)] = row
        hits: list[Hit] = []
        for key, score in top:
            if key not in rows:  # removed by a writer since the index was loaded
                continue
            chunk, blob = rows[key]
            dense = float(np.frombuffer(blob, dtype="float32") @ qvec)
            bm25 = self._bm25_of(cands, key) if mode != "dense" else None
            hits.append(Hit(chunk=chunk, score=float(score), rank=len(hits) + 1, dense_score=dense, bm25_score=bm25,
                            collection=self.collections[key[0]].name))
        return hits

    def close(self) -> None:
        for col in self.collections:
            col.close()


def _ranking(scores: dict[Key, float]) -> list[Key]:
    return [key for key, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]

