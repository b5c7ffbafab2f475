"""Search latency: p50/p95 per query for dense (flat and HNSW), BM25 and hybrid at 5k and 100k chunks,
and HNSW recall@10 against exact search, all measured in the same run.

Chunks are synthetic (Zipf-distributed words; unit vectors with topic clusters on a 32-dimensional
subspace plus full-rank noise, a stand-in for real sentence embeddings), written
straight into a collection's SQLite store; timings go through the real Searcher (FAISS, bm25s, fusion,
SQLite rows for the hits), with query vectors precomputed so the embedder's time is not counted.

Goal: dense p50 <= 2 ms at 100k chunks with recall@10 >= 0.98.

    python benchmarks/search_latency.py [--sizes 5000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 384


LATENT = 32  # sentence embeddings live near a low-dimensional manifold; i.i.d. 384-d noise would not


def embedding_like(n: int, rng):  # type: ignore[no-untyped-def]
    """Unit vectors with topic clusters on a LATENT-dimensional subspace plus a little full-rank noise."""
    import numpy as np

    basis = np.random.default_rng(1).standard_normal((LATENT, DIM)).astype("float32")
    topics = rng.standard_normal((max(n // 50, 10), LATENT)).astype("float32")
    z = topics[rng.integers(0, len(topics), n)] + 0.5 * rng.standard_normal((n, LATENT)).astype("float32")
    vecs = z @ basis + 0.5 * rng.standard_normal((n, DIM)).astype("float32")
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype("float32")


def synthetic_store(folder: Path, n: int, rng):  # type: ignore[no-untyped-def]
    import numpy as np

    from chatkit.retrieval.store import DocRecord, Store
    from chatkit.types import Chunk

    vocab = [f"w{i}" for i in range(20000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    vecs = embedding_like(n, rng)
    store = Store(folder / "store.sqlite")
    store.set_meta("embedder", "synthetic:384")
    store.set_meta("dim", str(DIM))
    words = rng.choice(len(vocab), size=(n, 60), p=weights)
    per_doc = 10
    for start in range(0, n, 5000):
        docs = []
        for d in range(start, min(start + 5000, n), per_doc):
            chunks = []
            for i in range(d, min(d + per_doc, n)):
                text = " ".join(vocab[w] for w in words[i])
                chunk = Chunk(f"doc{d}", i - d, text, f"Doc {d}", (), 0, len(text))
                chunks.append((chunk, f"h{i}", vecs[i].tobytes()))
            docs.append((DocRecord(f"doc{d}", "synthetic", f"Doc {d}", f"c{d}", "s", len(chunks)), chunks))
        store.write(docs)
    store.close()
    return vecs, words, vocab


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed_queries(searcher, queries, mode: str) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for text, vec in queries:
        start = time.perf_counter()
        searcher.search_vector(text, vec, 10, mode)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    import faiss
    import numpy as np

    from chatkit.config import RetrievalConfig
    from chatkit.retrieval.collection import Collection
    from chatkit.retrieval.searcher import Searcher
    from chatkit.retrieval.vectors import IndexParams

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 100000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=RetrievalConfig().hnsw_ef_search)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; k=10, candidates={RetrievalConfig().candidates}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "c"
            folder.mkdir()
            start = time.perf_counter()
            vecs, words, vocab = synthetic_store(folder, n, rng)
            pick = rng.choice(n, args.queries, replace=False)
            # A query is near, not on, a stored chunk: mixed with a fresh vector so its best cosine is ~0.64,
            # as for SciFact queries with all-MiniLM-L6-v2 (0.65).
            qv = 0.4 * vecs[pick] + 0.6 * embedding_like(args.queries, rng)
            qv /= np.linalg.norm(qv, axis=1, keepdims=True)
            queries = [(" ".join(vocab[w] for w in words[i][rng.choice(60, 4, replace=False)]), qv[j]) for j, i in enumerate(pick)]
            print(f"\n== {n:,} chunks (store written in {time.perf_counter() - start:.1f} s)")
            results = {}
            for kind, threshold in (("flat", n + 1), ("hnsw", 0)):
                params = IndexParams(ann_threshold=threshold, hnsw_ef_search=args.ef_search)
                col = Collection(folder, "bench", params)
                t0 = time.perf_counter()
                col.vectors = col.build_vectors(DIM)
                built = time.perf_counter() - t0
                if col.lexical is None:
                    t0 = time.perf_counter()
                    col.lexical = col.build_lexical()
                    print(f"bm25 index built in {time.perf_counter() - t0:.1f} s")
                lexical = col.lexical
                searcher = Searcher(None, [col], RetrievalConfig())  # type: ignore[arg-type]
                timed_queries(searcher, queries[:10], "dense")  # warm up
                lat = timed_queries(searcher, queries, "dense")
                ids = [col.vectors.search(q, 10)[0] for _, q in queries]
                results[kind] = ids
                print(f"dense {kind:>4}: p50 {percentile(lat, 0.5):6.2f} ms  p95 {percentile(lat, 0.95):6.2f} ms  (index built in {built:.1f} s)")
                raw = []
                for _, q in queries:
                    t0 = time.perf_counter()
                    col.vectors.search(q, 10)
                    raw.append((time.perf_counter() - t0) * 1000)
                print(f"  faiss {kind} search alone: p50 {percentile(raw, 0.5):6.3f} ms  p95 {percentile(raw, 0.95):6.3f} ms")
                if kind == "flat":
                    for mode in ("bm25", "hybrid"):
                        lat = timed_queries(searcher, queries, mode)
                        print(f"{mode:>10}: p50 {percentile(lat, 0.5):6.2f} ms  p95 {percentile(lat, 0.95):6.2f} ms")
                    col_flat_lexical = lexical
                else:
                    col.lexical = col_flat_lexical
                    lat = timed_queries(searcher, queries, "hybrid")
                    print(f"hybrid hnsw: p50 {percentile(lat, 0.5):6.2f} ms  p95 {percentile(lat, 0.95):6.2f} ms")
                col.close()
            recall = statistics.mean(len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(results["flat"], results["hnsw"], strict=True))
            print(f"HNSW recall@10 vs exact: {recall:.4f} (M={IndexParams().hnsw_m}, efSearch={args.ef_search})")


if __name__ == "__main__":
    main()
