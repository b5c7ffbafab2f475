"""Crash consistency: SIGKILL a writer at several points of `index add`, then check the collection."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli

SMALL = ["--set", "retrieval.batch_size=2", "--set", "retrieval.chunk_tokens=32", "--set", "retrieval.chunk_overlap=4"]


def make_notes(folder: Path, n: int = 30) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        body = " ".join(f"Note {i} sentence {j} mentions topic {i * 31 + j} and little else." for j in range(6))
        (folder / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n{body}\n")
    return folder


def check_consistent(home: Path, name: str, docs: int) -> None:
    db = sqlite3.connect(home / "collections" / name / "store.sqlite")
    try:
        n_docs = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        partial = db.execute("SELECT COUNT(*) FROM documents WHERE content_hash LIKE 'partial:%'").fetchone()[0]
        dupes = db.execute("SELECT COUNT(*) FROM (SELECT doc, ordinal FROM chunks GROUP BY doc, ordinal HAVING COUNT(*) > 1)").fetchone()[0]
        declared = db.execute("SELECT SUM(n_chunks) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        orphans = db.execute("SELECT COUNT(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)").fetchone()[0]
    finally:
        db.close()
    assert (n_docs, partial, dupes, orphans) == (docs, 0, 0, 0)
    assert declared == chunks


def check_index_files(folder: Path) -> None:
    """The FAISS and BM25 files of the store's generation exist and hold every chunk."""
    import faiss
    import numpy as np

    db = sqlite3.connect(folder / "store.sqlite")
    gen = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
    chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    db.close()
    assert faiss.read_index(str(folder / f"vectors-{gen}.faiss")).ntotal == chunks
    assert len(np.load(folder / f"bm25-{gen}" / "chunk_ids.npy")) == chunks
    assert not list(folder.glob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after-write:2", "mid-embed:3", "between-index-files"])
def test_killed_writer_leaves_a_consistent_collection(tmp_path: Path, point: str) -> None:
    home = tmp_path / "home"
    notes = make_notes(tmp_path / "notes")
    crashed = run_cli("--home", str(home), *SMALL, "index", "add", str(notes), "-c", "c", env={"CHATKIT_TEST_CRASH": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # Whatever was committed is whole: a reader right after the crash sees only complete documents.
    if (home / "collections" / "c" / "store.sqlite").exists():
        db = sqlite3.connect(home / "collections" / "c" / "store.sqlite")
        assert db.execute("SELECT COUNT(*) FROM documents d WHERE n_chunks != "
                          "(SELECT COUNT(*) FROM chunks c WHERE c.doc = d.id)").fetchone()[0] == 0
        db.close()
    again = run_cli("--home", str(home), *SMALL, "index", "add", str(notes), "-c", "c", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["added"] + summary["unchanged"] == 30 and summary["failed"] == 0
    check_consistent(home, "c", 30)
    check_index_files(home / "collections" / "c")


def test_crash_between_batches_keeps_committed_documents_and_rebuilds_indexes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    notes = make_notes(tmp_path / "notes")
    crashed = run_cli("--home", str(home), *SMALL, "index", "add", str(notes), "-c", "c",
                      env={"CHATKIT_TEST_CRASH": "after-write:1"})
    assert crashed.returncode == -signal.SIGKILL
    db = sqlite3.connect(home / "collections" / "c" / "store.sqlite")
    committed = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    db.close()
    assert 0 < committed < 30
    # No FAISS/BM25 file matches the store yet: a search rebuilds them from SQLite instead of failing.
    r = run_cli("--home", str(home), "search", "sentence", "-c", "c", "--json", "-k", "50")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    assert len({(h["doc_id"], h["ordinal"]) for h in hits}) == len(hits) > 0
    assert {h["doc_id"] for h in hits} <= {f"notes/note-{i:02d}" for i in range(30)}
