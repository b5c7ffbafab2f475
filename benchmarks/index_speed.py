"""Indexing speed: `chatkit index add` of SciFact vs raw `SentenceTransformer.encode` of the same chunk texts,
and re-adding the unchanged corpus, measured in the same run with a fresh (empty) embedding cache.

Goals: throughput ratio (raw encode time / full index time) >= 0.9; re-add <= 2 % of the full index time.

    python benchmarks/index_speed.py [--limit N]     # N: first N SciFact documents (default: all 5,183)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def main() -> None:
    from chatkit.config import Paths, Settings, apply_offline
    from chatkit.indexing.pipeline import run_add
    from chatkit.retrieval.service import collection, load_embedder

    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    args = parser.parse_args()
    if not SCIFACT.is_file():
        print(f"SciFact not found at {SCIFACT}; skipping")
        return
    settings = Settings()
    apply_offline(settings)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "scifact" / "corpus.jsonl"
        corpus.parent.mkdir()
        with SCIFACT.open() as src, corpus.open("w") as dst:
            for i, line in enumerate(src):
                if args.limit is not None and i >= args.limit:
                    break
                dst.write(line)
        paths = Paths(Path(tmp) / "home").ensure()
        embedder = load_embedder(settings)
        embedder.encode(["warm up the model"] * 64)
        col = collection(settings, paths, "scifact")

        start = time.perf_counter()
        summary = run_add(settings, paths, col, embedder, [corpus])
        full = time.perf_counter() - start

        texts = []
        for _, part in col.store.iter_embed_texts():
            texts += part
        start = time.perf_counter()
        embedder.model.encode(texts, batch_size=settings.retrieval.batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
        raw = time.perf_counter() - start

        start = time.perf_counter()
        again = run_add(settings, paths, col, embedder, [corpus])
        readd = time.perf_counter() - start
        col.close()

    docs = summary.added
    print(f"corpus: {docs} documents -> {len(texts)} chunks (chunk_tokens {settings.retrieval.chunk_tokens}, batch {settings.retrieval.batch_size})")
    print(f"chatkit index add (parse+chunk+embed+SQLite+FAISS+BM25): {full:.1f} s  ({docs / full:.1f} docs/s, {len(texts) / full:.1f} chunks/s)")
    print(f"raw SentenceTransformer.encode of the same {len(texts)} texts: {raw:.1f} s  ({len(texts) / raw:.1f} chunks/s)")
    print(f"throughput ratio (raw time / index time): {raw / full:.3f} (goal >= 0.9)")
    print(f"re-add unchanged: {readd:.2f} s, {again.embedded} embedded, {again.skipped} unchanged; "
          f"{100 * readd / full:.2f} % of the full index (goal <= 2 %)")
    print(json.dumps({"docs": docs, "chunks": len(texts), "index_s": round(full, 2), "raw_s": round(raw, 2),
                      "ratio": round(raw / full, 3), "readd_s": round(readd, 3), "readd_pct": round(100 * readd / full, 2)}))


if __name__ == "__main__":
    main()
