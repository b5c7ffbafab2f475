"""Retrieval quality on a QA file: Recall@k and MRR@10 of the gold doc_ids, retrieval only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatkit.errors import DataError
from chatkit.evaluation.answers import QAItem

KS = (1, 3, 5, 10)


def ranked_docs(hits: Sequence[Any]) -> list[str]:
    """Chunk hits collapsed to documents, each at its best chunk's rank."""
    seen: list[str] = []
    for hit in hits:
        if hit.chunk.doc_id not in seen:
            seen.append(hit.chunk.doc_id)
    return seen


def score_ranking(ranked: Sequence[str], gold: Sequence[str], ks: Sequence[int] = KS) -> dict[str, float]:
    gold_set = set(gold)
    scores = {f"recall@{k}": len(gold_set & set(ranked[:k])) / len(gold_set) for k in ks}
    first = next((i for i, d in enumerate(ranked[:10], start=1) if d in gold_set), None)
    scores["mrr@10"] = 1.0 / first if first else 0.0
    return scores


def eval_qa_retrieval(searcher: Any, items: Sequence[QAItem], mode: str | None = None, depth: int = 10) -> dict[str, Any]:
    scored = [it for it in items if it.answerable and it.doc_ids]
    if not scored:
        raise DataError("the QA file has no answerable item with doc_ids", "retrieval needs gold doc_ids to score")
    per_item: list[dict[str, Any]] = []
    for it in scored:
        ranked = ranked_docs(searcher.search(it.question, depth * 3, mode))[:depth]
        per_item.append({"id": it.id, **score_ranking(ranked, it.doc_ids), "retrieved": ranked})
    keys = [f"recall@{k}" for k in KS] + ["mrr@10"]
    return {"queries": len(scored), "mode": mode, **{k: round(sum(r[k] for r in per_item) / len(per_item), 4) for k in keys},
            "items": per_item}
