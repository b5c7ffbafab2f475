"""`eval retrieval --beir DIR`: index a BEIR corpus into a cached collection and score a split's queries
with the ranking measures of chatkit.evaluation.ranking: nDCG@10, Recall@10, Recall@100, MRR@10."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import DataError, InputError
from chatkit.evaluation.ranking import as_run, mean_scores, ranked_documents, score_queries
from chatkit.indexing.pipeline import chunk_signature, file_sha256, run_add
from chatkit.indexing.report import Reporter
from chatkit.inputs import read_jsonl, require_input_file
from chatkit.retrieval.collection import Collection
from chatkit.retrieval.searcher import MODES, Searcher
from chatkit.retrieval.service import index_params, load_embedder, open_collection_for_search

DEPTH = 100  # documents ranked per query: enough for Recall@100
MEASURES = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def read_queries(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, row in read_jsonl(path, "BEIR queries file", "each line needs '_id' and 'text'"):
        if not isinstance(row, dict) or "_id" not in row or not isinstance(row.get("text"), str):
            raise DataError(f"{path}:{number}: not a BEIR query row", "each line needs '_id' and 'text'")
        out[str(row["_id"])] = row["text"]
    return out


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    hint = "want query-id<TAB>corpus-id<TAB>score"
    with require_input_file(path, "qrels file", hint).open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        number = 0
        try:
            for number, row in enumerate(rows, start=1):
                if not row or (number == 1 and row[0] == "query-id"):
                    continue
                try:
                    qid, did, score = row[0], row[1], int(row[2])
                except (IndexError, ValueError):
                    raise DataError(f"{path}:{number}: not a qrels row", hint) from None
                qrels.setdefault(qid, {})[did] = score
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text (after line {number})", hint) from None
        except csv.Error as exc:
            raise DataError(f"{path}:{number + 1}: {exc}", hint) from None
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


def document_run(searcher: Searcher, query: str, qvec: Any, mode: str, depth: int = DEPTH) -> dict[str, float]:
    """The query's chunk hits collapsed to `depth` documents, as a trec run."""
    return as_run(ranked_documents(searcher.search_vector(query, qvec, depth * 3, mode), depth))


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
        run = {q: document_run(searcher, queries[q], qvecs[i], mode) for i, q in enumerate(qids)}
        scores = mean_scores(score_queries(run, qrels, MEASURES), MEASURES)
        results.append({"mode": mode, "split": split, "queries": len(qids), **{k: round(v, 4) for k, v in scores.items()},
                        "fusion": settings.retrieval.fusion if mode == "hybrid" else None,
                        "documents": col.store.counts()["documents"], "chunks": col.store.counts()["chunks"],
                        "index_seconds": round(index_seconds, 1), "search_seconds": round(time.perf_counter() - t0, 2),
                        "embedded": summary.embedded, "failed": summary.failed})
    col.close()
    return results
