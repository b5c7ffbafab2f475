"""Retrieval quality on a QA file, retrieval only: each answerable item's gold doc_ids are its qrels,
scored with the ranking measures of chatkit.evaluation.ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatkit.errors import DataError
from chatkit.evaluation.answers import QAItem
from chatkit.evaluation.ranking import as_run, mean_scores, ranked_documents, score_queries

MEASURES = ("ndcg@10", "recall@1", "recall@3", "recall@5", "recall@10", "mrr@10")


def eval_qa_retrieval(searcher: Any, items: Sequence[QAItem], mode: str | None = None, depth: int = 10) -> dict[str, Any]:
    scored = [it for it in items if it.answerable and it.doc_ids]
    if not scored:
        raise DataError("the QA file has no answerable item with doc_ids", "retrieval needs gold doc_ids to score")
    # Positions, not item ids, name the queries: two items may share an id.
    ranked = {str(i): ranked_documents(searcher.search(it.question, depth * 3, mode), depth) for i, it in enumerate(scored)}
    qrels = {str(i): dict.fromkeys(it.doc_ids, 1) for i, it in enumerate(scored)}
    per_query = score_queries({q: as_run(docs) for q, docs in ranked.items()}, qrels, MEASURES)
    per_item = [{"id": it.id, **per_query[str(i)], "retrieved": ranked[str(i)]} for i, it in enumerate(scored)]
    means = mean_scores(per_query, MEASURES)
    return {"queries": len(scored), "mode": mode, **{k: round(v, 4) for k, v in means.items()}, "items": per_item}
