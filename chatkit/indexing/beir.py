"""`eval retrieval --beir DIR`: index a BEIR corpus into a cached collection and score a split's queries
with trec_eval's measures (pytrec_eval): nDCG@10, Recall@10, Recall@100, MRR@10."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import DataError, InputError
from chatkit.indexing.pipeline import chunk_signature, file_sha256, run_add
from chatkit.indexing.report import Reporter
from chatkit.retrieval.collection import Collection
from chatkit.retrieval.searcher import MODES, Searcher
from chatkit.retrieval.service import index_params, load_embedder, open_collection_for_search

DEPTH = 100  # documents ranked per query: enough for Recall@100


def read_queries(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[str(row["_id"])] = str(row["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: not a BEIR query row", "each line needs '_id' and 'text'") from None
    return out


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                qid, did, score = row[0], row[1], int(row[2])
            except (IndexError, ValueError):
                raise DataError(f"{path}:{number}: not a qrels row", "want query-id<TAB>corpus-id<TAB>score") from None
            qrels.setdefault(qid, {})[did] = score
    return qrels


def beir_files(folder: Path, split: str) -> tuple[Path, Path, Path]:
    folder = folder.expanduser()
    corpus, queries, qrels = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for p in (corpus, queries):
        if not p.is_file():
            raise InputError(f"{p} not found", "--beir wants a BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv")
    if not qrels.is_file():
        have = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise InputError(f"no qrels for split '{split}' in {folder / 'qrels'}", f"splits there: {', '.join(have) or 'none'}")
    return corpus, queries, qrels


def cached_collection(settings: Settings, paths: Paths, folder: Path, corpus: Path) -> Collection:
    """The corpus' collection under the cache, named by the corpus content and the chunking settings."""
    key = hashlib.sha256(f"{file_sha256(corpus)}|{chunk_signature(settings)}|{settings.models.embedder}".encode()).hexdigest()
    return Collection(paths.cache / "beir" / f"{folder.name}-{key[:16]}", f"beir-{folder.name}", index_params(settings))


def evaluate(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    import pytrec_eval

    qrels = {q: r for q, r in qrels.items() if q in run}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"}).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = max(len(full), 1)
    return {
        "ndcg@10": sum(v["ndcg_cut_10"] for v in full.values()) / n,
        "recall@10": sum(v["recall_10"] for v in full.values()) / n,
        "recall@100": sum(v["recall_100"] for v in full.values()) / n,
        "mrr@10": sum(v["recip_rank"] for v in mrr.values()) / n,
    }


def doc_run(searcher: Searcher, query: str, qvec: Any, mode: str, depth: int = DEPTH) -> dict[str, float]:
    """Chunk hits collapsed to documents (each at its best chunk's rank), as a trec run."""
    hits = searcher.search_vector(query, qvec, depth * 3, mode)
    docs: dict[str, float] = {}
    for hit in hits:
        if hit.chunk.doc_id not in docs:
            # Scores strictly decreasing with our rank, so trec_eval keeps our order (it sorts by score).
            docs[hit.chunk.doc_id] = 1.0 / (len(docs) + 1)
        if len(docs) == depth:
            break
    return docs


def eval_retrieval(settings: Settings, paths: Paths, folder: Path, split: str = "test", modes: tuple[str, ...] = ("hybrid",),
                   limit: int | None = None, reporter: Reporter | None = None, say: Any = None) -> list[dict[str, Any]]:
    for m in modes:
        if m not in MODES:
            raise InputError(f"unknown mode '{m}'", "use dense, bm25, hybrid or all")
    corpus, queries_path, qrels_path = beir_files(folder, split)
    qrels = read_qrels(qrels_path)
    queries = read_queries(queries_path)
    qids = [q for q in qrels if q in queries][: limit or None]
    if not qids:
        raise DataError(f"no query of {qrels_path.name} is in {queries_path.name}", "check the BEIR folder")
    embedder = load_embedder(settings)
    col = cached_collection(settings, paths, folder, corpus)
    started = time.perf_counter()
    summary = run_add(settings, paths, col, embedder, [corpus], reporter=reporter, say=say)
    index_seconds = time.perf_counter() - started
    open_collection_for_search(col, embedder)
    depth_config = dataclasses.replace(settings.retrieval, candidates=max(settings.retrieval.candidates, DEPTH * 3))
    searcher = Searcher(embedder, [col], depth_config)
    qvecs = embedder.encode([queries[q] for q in qids])
    results = []
    for mode in modes:
        t0 = time.perf_counter()
        run = {q: doc_run(searcher, queries[q], qvecs[i], mode) for i, q in enumerate(qids)}
        scores = evaluate(run, qrels)
        results.append({"mode": mode, "split": split, "queries": len(qids), **{k: round(v, 4) for k, v in scores.items()},
                        "fusion": settings.retrieval.fusion if mode == "hybrid" else None,
                        "documents": col.store.counts()["documents"], "chunks": col.store.counts()["chunks"],
                        "index_seconds": round(index_seconds, 1), "search_seconds": round(time.perf_counter() - t0, 2),
                        "embedded": summary.embedded, "failed": summary.failed})
    col.close()
    return results
