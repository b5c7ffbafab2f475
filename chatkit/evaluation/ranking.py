"""The one definition of ranking metrics in chatkit: trec_eval's, computed by pytrec_eval.

A run maps query id -> {doc id: score}, higher scores ranked first (give distinct scores: trec_eval
breaks ties by doc id, not by your order). Qrels map query id -> {doc id: relevance}; relevance > 0
counts as relevant. Measure names:

- `ndcg@k`: nDCG over the top k;
- `recall@k`: share of the query's relevant documents found in the top k;
- `p@k`: share of the top k that is relevant;
- `map`: mean average precision over the whole ranking;
- `mrr@k`: reciprocal rank of the first relevant document within the top k (0 when none); `mrr`: no cut.

A query with qrels that ranks nothing scores 0 on every measure; a query without qrels is not scored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chatkit.errors import InputError

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

_NAME = re.compile(r"(ndcg|recall|p|map|mrr)(?:@(\d+))?")
_TREC = {"ndcg": "ndcg_cut", "recall": "recall", "p": "P", "map": "map"}


def ranked_documents(hits: Iterable[Any], depth: int) -> list[str]:
    """Chunk hits collapsed to documents, each at its best chunk's rank, at most `depth` of them."""
    docs: list[str] = []
    for hit in hits:
        if len(docs) == depth:
            break
        if hit.chunk.doc_id not in docs:
            docs.append(hit.chunk.doc_id)
    return docs


def as_run(ranking: Sequence[str]) -> dict[str, float]:
    """A ranked list of doc ids as one query's run: scores strictly decreasing, so trec_eval keeps the order."""
    return {doc: 1.0 / rank for rank, doc in enumerate(dict.fromkeys(ranking), start=1)}


def _parse(name: str) -> tuple[str, int | None]:
    match = _NAME.fullmatch(name)
    family, k = (match.group(1), match.group(2)) if match else ("", None)
    if not match or (k is None and family in ("ndcg", "recall", "p")) or (k is not None and family == "map"):
        raise InputError(f"unknown ranking measure '{name}'", "use ndcg@k, recall@k, p@k, map, mrr or mrr@k")
    return family, None if k is None else int(k)


def _top(run: Run, k: int) -> dict[str, dict[str, float]]:
    return {q: dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]) for q, docs in run.items()}


def score_queries(run: Run, qrels: Qrels, measures: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each judged query of `run` -> {measure name: value}."""
    import pytrec_eval

    parsed = {name: _parse(name) for name in measures}
    judged = {q: dict(qrels[q]) for q in run if q in qrels}
    out: dict[str, dict[str, float]] = {q: dict.fromkeys(measures, 0.0) for q in judged}
    if not judged:
        return out
    plain = {name: (family, k) for name, (family, k) in parsed.items() if family != "mrr"}
    if plain:
        trec = {_TREC[family] + (f".{k}" if k is not None else "") for family, k in plain.values()}
        scored = pytrec_eval.RelevanceEvaluator(judged, trec).evaluate({q: dict(run[q]) for q in judged})
        for q, values in scored.items():
            for name, (family, k) in plain.items():
                out[q][name] = float(values[_TREC[family] + (f"_{k}" if k is not None else "")])
    for name, (family, k) in parsed.items():
        if family == "mrr":
            ranked = _top({q: run[q] for q in judged}, k) if k is not None else {q: dict(run[q]) for q in judged}
            for q, values in pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(ranked).items():
                out[q][name] = float(values["recip_rank"])
    return out


def mean_scores(per_query: Mapping[str, Mapping[str, float]], measures: Sequence[str]) -> dict[str, float]:
    """Each measure averaged over the queries (0.0 with no query)."""
    n = len(per_query)
    return {name: sum(q[name] for q in per_query.values()) / n if n else 0.0 for name in measures}
