"""Collections end to end in-process, with the real packaged embedder and small generated documents:
incremental add by content hash, status, sync, rm, rebuild, the embedding cache, index recovery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatkit.config import Paths, Settings, apply_offline
from chatkit.errors import CollectionError, InputError

TOPICS = {
    "lora": "# LoRA\n\nLoRA freezes the pretrained weights and trains two low-rank matrices.\n\n## Memory\n\nOnly the adapters need optimizer state, so memory drops sharply.\n",
    "faiss": "# FAISS\n\nFAISS stores dense vectors and finds nearest neighbours with flat or HNSW indexes.\n",
    "bm25": "# BM25\n\nBM25 ranks documents by term frequency, inverse document frequency and length normalisation.\n",
    "cooking": "# Risotto\n\nToast the rice, add warm stock one ladle at a time and stir until creamy.\n",
}


@pytest.fixture(scope="module")
def embedder():
    from chatkit.retrieval.service import load_embedder

    settings = Settings()
    apply_offline(settings)
    return load_embedder(settings)


@pytest.fixture
def env(tmp_path: Path, embedder):
    settings = Settings()
    paths = Paths(tmp_path / "home").ensure()
    docs = tmp_path / "notes"
    docs.mkdir()
    for name, text in TOPICS.items():
        (docs / f"{name}.md").write_text(text)
    return settings, paths, docs, embedder


def add(env, *inputs, name: str = "notes", remove_missing: bool = False, settings: Settings | None = None):
    from chatkit.indexing.pipeline import run_add
    from chatkit.retrieval.service import collection

    s, paths, docs, embedder = env
    s = settings or s
    col = collection(s, paths, name)
    try:
        return run_add(s, paths, col, embedder, list(inputs or [docs]), remove_missing=remove_missing)
    finally:
        col.close()


def chunk_rows(paths: Paths, name: str = "notes") -> list[tuple]:
    db = sqlite3.connect(paths.collections / name / "store.sqlite")
    try:
        return db.execute("SELECT d.doc_id, c.ordinal, c.text FROM chunks c JOIN documents d ON d.id = c.doc").fetchall()
    finally:
        db.close()


def search(env, query: str, mode: str = "hybrid", k: int = 3, name: str = "notes"):
    from chatkit.retrieval.service import open_searcher

    settings, paths, _, embedder = env
    searcher = open_searcher(settings, paths, [name], embedder=embedder)
    try:
        return searcher.search(query, k=k, mode=mode)
    finally:
        searcher.close()


def test_add_then_re_add_does_no_embedding_work(env) -> None:
    first = add(env)
    assert (first.added, first.updated, first.failed) == (4, 0, 0) and first.embedded == first.chunks > 0
    again = add(env)
    assert (again.added, again.updated, again.skipped, again.embedded, again.chunks) == (0, 0, 4, 0, 0)
    rows = chunk_rows(env[1])
    assert len(rows) == len(set((d, o) for d, o, _ in rows)) == first.chunks


def test_changed_file_replaces_its_chunks_without_duplicates(env) -> None:
    _, paths, docs, _ = env
    add(env)
    before = chunk_rows(paths)
    (docs / "faiss.md").write_text("# FAISS\n\nFAISS now also supports IVF-PQ compression of vectors.\n")
    out = add(env)
    assert (out.added, out.updated, out.skipped) == (0, 1, 3)
    after = chunk_rows(paths)
    faiss_texts = [t for d, _, t in after if d == "notes/faiss"]
    assert faiss_texts == ["FAISS now also supports IVF-PQ compression of vectors."]
    assert len(after) == len(before)
    hits = search(env, "IVF-PQ compression", mode="bm25", k=1)
    assert hits[0].chunk.doc_id == "notes/faiss"


def test_status_reports_without_writing_and_sync_removes_missing(env) -> None:
    from chatkit.indexing.pipeline import chunk_signature, make_plan
    from chatkit.retrieval.service import collection

    settings, paths, docs, _ = env
    add(env)
    (docs / "cooking.md").unlink()
    (docs / "lora.md").write_text(TOPICS["lora"] + "\nQLoRA adds 4-bit quantization.\n")
    (docs / "new.txt").write_text("A brand new note about tokenizers.")
    col = collection(settings, paths, "notes")
    generation = col.store.generation
    plan = make_plan(col, [docs], None, chunk_signature(settings))
    states = {f.found.doc_id: f.state for f in plan.files}
    assert states == {"notes/lora": "changed", "notes/faiss": "unchanged", "notes/bm25": "unchanged", "notes/new": "new"}
    assert [Path(m).name for m in plan.missing] == ["cooking.md"]
    assert col.store.generation == generation
    col.close()
    out = add(env, remove_missing=True)
    assert (out.added, out.updated, out.skipped, out.removed) == (1, 1, 2, 1)
    assert "notes/cooking" not in {d for d, _, _ in chunk_rows(paths)}


def test_bad_files_are_counted_and_nothing_stored_is_lost(env) -> None:
    _, paths, docs, _ = env
    add(env)
    before = chunk_rows(paths)
    (docs / "lora.md").write_bytes(b"# LoRA\n\ncaf\xe9")  # the stored version must survive a bad update
    (docs / "empty.txt").write_text("")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "rows.jsonl").write_text('{"text": "good row"}\n{broken\n')
    out = add(env)
    assert out.failed == 4, out.failures
    assert any("rows.jsonl:2" in f for f in out.failures)
    assert any("not valid UTF-8" in f for f in out.failures)
    after = chunk_rows(env[1])
    assert [r for r in before if r[0] == "notes/lora"] == [r for r in after if r[0] == "notes/lora"]
    assert ("rows/1", 0, "good row") in after


def test_embedding_cache_survives_dropping_the_collection(env) -> None:
    from chatkit.retrieval.service import collection

    settings, paths, _, _ = env
    first = add(env)
    col = collection(settings, paths, "notes")
    col.drop()
    out = add(env)
    assert out.added == 4 and out.embedded == 0 and out.cached == first.chunks


def test_rm_by_doc_id_and_re_add_brings_it_back(env) -> None:
    from chatkit.retrieval.service import collection

    settings, paths, docs, _ = env
    add(env)
    col = collection(settings, paths, "notes")
    col.store.remove_documents(["notes/bm25"])
    col.close()
    assert "notes/bm25" not in {d for d, _, _ in chunk_rows(paths)}
    out = add(env)
    assert out.added == 1 and out.embedded == 0


def test_search_modes_scores_and_hit_fields(env) -> None:
    add(env)
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(env, "low-rank adapters for fine-tuning", mode=mode, k=3)
        assert hits[0].chunk.doc_id == "notes/lora", mode
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(h.dense_score is not None and -1 <= h.dense_score <= 1 for h in hits)
        assert all((h.bm25_score is not None) == (mode != "dense") for h in hits)
        assert all(h.collection == "notes" and h.chunk.chunk_id > 0 for h in hits)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
    hit = search(env, "optimizer state memory", k=1)[0]
    assert hit.chunk.heading_path == ("Memory",) and hit.chunk.title == "LoRA"
    assert hit.chunk.source.endswith("lora.md") and hit.chunk.char_end > hit.chunk.char_start


def test_missing_or_empty_collection_is_a_collection_error(env) -> None:
    from chatkit.retrieval.service import collection, open_searcher

    settings, paths, _, embedder = env
    with pytest.raises(CollectionError, match="does not exist") as err:
        open_searcher(settings, paths, ["nope"], embedder=embedder)
    assert "chatkit index add" in err.value.hint
    col = collection(settings, paths, "empty")
    col.store.counts()
    col.close()
    with pytest.raises(CollectionError, match="is empty"):
        open_searcher(settings, paths, ["empty"], embedder=embedder)


def test_other_embedder_is_refused_with_a_rebuild_hint(env) -> None:
    from chatkit.indexing.rebuild import rebuild
    from chatkit.retrieval.service import collection, open_searcher

    settings, paths, _, embedder = env
    add(env)
    col = collection(settings, paths, "notes")
    col.store.set_meta("embedder", "someone/else:768")
    col.close()
    with pytest.raises(CollectionError, match="built with embedder someone/else") as err:
        open_searcher(settings, paths, ["notes"], embedder=embedder)
    assert "chatkit index rebuild" in err.value.hint
    with pytest.raises(CollectionError):
        add(env)
    out = rebuild(paths, collection(settings, paths, "notes"), embedder)
    assert out["embedded"] == 0 and out["chunks"] > 0  # all vectors came from the cache
    assert search(env, "risotto rice stock", k=1)[0].chunk.doc_id == "notes/cooking"


def test_faiss_and_bm25_are_rebuilt_from_sqlite_when_they_disagree(env) -> None:
    settings, paths, _, _ = env
    add(env)
    folder = paths.collections / "notes"
    for p in folder.glob("vectors-*.faiss"):
        p.write_bytes(b"garbage")
    for p in folder.glob("bm25-*"):
        for f in p.iterdir():
            f.unlink()
    hits = search(env, "nearest neighbours vectors", k=1)
    assert hits[0].chunk.doc_id == "notes/faiss"
    gen = sqlite3.connect(folder / "store.sqlite").execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]
    assert (folder / f"vectors-{gen}.faiss").stat().st_size > 100  # the reader saved the rebuilt index


def test_hnsw_past_the_threshold(env) -> None:
    from chatkit.retrieval.service import collection

    settings, paths, _, embedder = env
    settings.retrieval.ann_threshold = 2
    add(env, settings=settings)
    col = collection(settings, paths, "notes")
    col.load_indexes(embedder.dim)
    assert col.vectors is not None and col.vectors.kind == "hnsw"
    col.close()
    assert search(env, "BM25 term frequency", mode="dense", k=1)[0].chunk.doc_id == "notes/bm25"


def test_ensure_collection_builds_once_then_is_a_no_op(env) -> None:
    from chatkit.indexing import ensure_collection

    settings, paths, docs, embedder = env
    said: list[str] = []
    ensure_collection(settings, paths, "handbook", docs, progress=said.append, embedder=embedder)
    assert any("4 added" in s for s in said)
    said.clear()
    ensure_collection(settings, paths, "handbook", docs, progress=said.append, embedder=embedder)
    assert said == []
    (docs / "bm25.md").unlink()
    ensure_collection(settings, paths, "handbook", docs, progress=said.append, embedder=embedder)
    assert any("1 removed" in s for s in said)


def test_streamed_document_is_indexed_in_batches(env, tmp_path: Path) -> None:
    from chatkit.indexing.pipeline import Indexer, make_plan
    from chatkit.retrieval.service import collection

    settings, paths, _, embedder = env
    big = tmp_path / "big" / "log.txt"
    big.parent.mkdir()
    big.write_text("".join(f"Entry {i}: the service restarted after a timeout.\n\n" for i in range(400)))
    col = collection(settings, paths, "big")
    plan = make_plan(col, [big], None, "x")
    out = Indexer(settings, paths, col, embedder, stream_bytes=1000).add(plan)
    assert out.added == 1 and out.chunks > 2
    doc = col.store.document("big/log")
    assert doc is not None and not doc.content_hash.startswith("partial:") and doc.n_chunks == out.chunks
    col.close()


def test_empty_or_being_built_collections_are_skipped_in_a_multi_collection_search(env) -> None:
    from chatkit.retrieval.service import collection, open_searcher

    settings, paths, _, embedder = env
    add(env)
    empty = collection(settings, paths, "empty")  # what a failed first add leaves: a store, no chunks
    empty.store.counts()
    empty.close()
    building = collection(settings, paths, "building")
    building.store.counts()
    lock = building.lock(timeout=0)
    lock.acquire()  # as a running first `index add` holds it
    try:
        searcher = open_searcher(settings, paths, ["notes", "empty", "building"], embedder=embedder)
        try:
            assert [(s.name, s.reason) for s in searcher.skipped] == [("empty", "is empty"), ("building", "is being built")]
            assert [c.name for c in searcher.collections] == ["notes"]
            assert searcher.search("LoRA", k=1)[0].chunk.doc_id.endswith("lora")
            with pytest.raises(InputError, match="the query is empty"):
                searcher.search("  ")
        finally:
            searcher.close()
        with pytest.raises(CollectionError, match="'building' is being built"):
            open_searcher(settings, paths, ["building"], embedder=embedder)
        with pytest.raises(CollectionError, match="no collection can be searched.*'empty' is empty.*'building' is being built"):
            open_searcher(settings, paths, ["empty", "building"], embedder=embedder)
        with pytest.raises(CollectionError, match="'nope' does not exist"):  # a typo is never skipped
            open_searcher(settings, paths, ["notes", "nope"], embedder=embedder)
    finally:
        lock.release()
    with pytest.raises(CollectionError, match="'building' is empty"):  # its add is over
        open_searcher(settings, paths, ["building"], embedder=embedder)
