"""Retrieval quality on a QA file, retrieval only: each answerable item's gold doc_ids are its qrels,
scored with the ranking measures of chatkit.evaluation.ranking."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import DataError
from chatkit.evaluation.answers import QAItem, load_qa
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


def qa_file_retrieval(settings: Settings, paths: Paths, qa: Path, collections: Sequence[str] | None, modes: Sequence[str],
                      limit: int | None, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """`eval retrieval --qa`: one score dict per retrieval mode over the named (default: configured) collections."""
    from chatkit.assembly import ensure_default_collections
    from chatkit.evaluation.preflight import check_collections
    from chatkit.retrieval.service import load_embedder, open_searcher

    items = load_qa(qa)[: limit or None]
    names = list(collections or settings.engine.collections)
    check_collections(settings, paths, names)
    embedder = load_embedder(settings)
    ensure_default_collections(settings, paths, names, say, embedder)
    searcher = open_searcher(settings, paths, names, embedder=embedder)
    return [eval_qa_retrieval(searcher, items, mode) | {"collections": names} for mode in modes]
