"""Fusing a dense and a BM25 ranking into one."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def rrf(rankings: Sequence[Sequence[K]], k: int = 60) -> dict[K, float]:
    """Reciprocal rank fusion: sum over rankings of 1 / (k + rank)."""
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def _minmax(scores: Mapping[K, float]) -> dict[K, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {i: (s - lo) / span if span > 0 else 1.0 for i, s in scores.items()}


def mix(dense: Mapping[K, float], bm25: Mapping[K, float], dense_weight: float = 0.5) -> dict[K, float]:
    """Min-max normalise each score over the candidates, then a weighted sum (a missing score counts 0)."""
    d, b = _minmax(dense), _minmax(bm25)
    return {i: dense_weight * d.get(i, 0.0) + (1 - dense_weight) * b.get(i, 0.0) for i in set(d) | set(b)}
