"""The SQLite source of truth of one collection: documents, chunks with their vectors, sources, meta.

Every write is one transaction that also bumps `generation`; the FAISS and BM25 files are named by the
generation they were built from, so a stale or half-written index is recognised and rebuilt from here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.errors import CollectionError
from chatkit.types import Chunk

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY, file_hash TEXT NOT NULL, size INTEGER NOT NULL, chunk_sig TEXT NOT NULL,
    indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, source TEXT NOT NULL, title TEXT NOT NULL,
    content_hash TEXT NOT NULL, chunk_sig TEXT NOT NULL, n_chunks INTEGER NOT NULL, added_at REAL NOT NULL,
    updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT NOT NULL, char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL, page INTEGER, hash TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc);
"""


@dataclass(frozen=True)
class DocRecord:
    doc_id: str
    source: str
    title: str
    content_hash: str
    chunk_sig: str
    n_chunks: int = 0


@dataclass(frozen=True)
class SourceRecord:
    path: str
    file_hash: str
    size: int
    chunk_sig: str


@dataclass(frozen=True)
class Change:
    """What one write did, for updating the derived indexes in place."""

    removed: list[int]
    added: list[int]
    generation: int


class Store:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly and not path.is_file():
            raise CollectionError(f"no collection store at {path}", "create it with `chatkit index add PATH`")
        try:
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self.db.executescript(_SCHEMA)
                if self.meta("schema_version") is None:
                    self._init_meta()
        except sqlite3.DatabaseError as exc:
            raise CollectionError(f"collection store {path} is unreadable: {exc}",
                                  "drop the collection with `chatkit index drop` and add the files again") from None
        version = self.meta("schema_version")
        if version is not None and int(version) != SCHEMA_VERSION:
            raise CollectionError(f"{path} has schema version {version}, this chatkit reads {SCHEMA_VERSION}",
                                  "run `chatkit index rebuild` or drop and re-add the collection")

    def _init_meta(self) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("generation", "0"), ("created_at", str(time.time()))])

    def close(self) -> None:
        self.db.close()

    # --- meta -----------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def transaction(self) -> Any:
        return _Transaction(self.db)

    def _bump(self) -> int:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        return int(self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    # --- reads ----------------------------------------------------------------------------

    def source(self, path: str) -> SourceRecord | None:
        row = self.db.execute("SELECT path, file_hash, size, chunk_sig FROM sources WHERE path = ?", (path,)).fetchone()
        return SourceRecord(*row) if row else None

    def sources(self) -> list[SourceRecord]:
        return [SourceRecord(*r) for r in self.db.execute("SELECT path, file_hash, size, chunk_sig FROM sources ORDER BY path")]

    def document(self, doc_id: str) -> DocRecord | None:
        row = self.db.execute("SELECT doc_id, source, title, content_hash, chunk_sig, n_chunks FROM documents WHERE doc_id = ?",
                              (doc_id,)).fetchone()
        return DocRecord(*row) if row else None

    def documents(self, source: str | None = None) -> list[DocRecord]:
        sql = "SELECT doc_id, source, title, content_hash, chunk_sig, n_chunks FROM documents"
        rows = self.db.execute(sql + " WHERE source = ? ORDER BY doc_id", (source,)) if source else \
            self.db.execute(sql + " ORDER BY doc_id")
        return [DocRecord(*r) for r in rows]

    def doc_hashes(self, source: str) -> dict[str, tuple[str, str]]:
        rows = self.db.execute("SELECT doc_id, content_hash, chunk_sig FROM documents WHERE source = ?", (source,))
        return {r[0]: (r[1], r[2]) for r in rows}

    def counts(self) -> dict[str, int]:
        docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        sources = self.db.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
        return {"documents": int(docs), "chunks": int(chunks), "sources": int(sources)}

    def chunks(self, ids: Sequence[int]) -> dict[int, tuple[Chunk, bytes]]:
        """Chunks (with their stored vectors as raw float32 bytes) by chunk id."""
        out: dict[int, tuple[Chunk, bytes]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT c.id, d.doc_id, c.ordinal, c.text, d.title, c.heading, c.char_start, c.char_end, d.source, "
                f"c.page, c.vector FROM chunks c JOIN documents d ON d.id = c.doc WHERE c.id IN ({marks})", part)
            for r in rows:
                chunk = Chunk(doc_id=r[1], ordinal=r[2], text=r[3], title=r[4], heading_path=tuple(json.loads(r[5])),
                              char_start=r[6], char_end=r[7], source=r[8], page=r[9], chunk_id=r[0])
                out[r[0]] = (chunk, r[10])
        return out

    def iter_vectors(self, batch: int = 20000) -> Iterator[tuple[list[int], list[bytes]]]:
        last = -1
        while True:
            rows = self.db.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            yield [r[0] for r in rows], [r[1] for r in rows]
            last = rows[-1][0]

    def iter_embed_texts(self, batch: int = 20000) -> Iterator[tuple[list[int], list[str]]]:
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT c.id, c.text, d.title, c.heading FROM chunks c JOIN documents d ON d.id = c.doc "
                "WHERE c.id > ? ORDER BY c.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            texts = [Chunk("", 0, r[1], r[2], tuple(json.loads(r[3])), 0, 0).embed_text for r in rows]
            yield [r[0] for r in rows], texts
            last = rows[-1][0]

    def chunk_hashes(self) -> Iterator[tuple[int, str, str]]:
        """(chunk id, chunk hash, embed text) of every chunk, for re-embedding."""
        for ids, texts in self.iter_embed_texts():
            marks = ",".join("?" * len(ids))
            hashes = dict(self.db.execute(f"SELECT id, hash FROM chunks WHERE id IN ({marks})", ids).fetchall())
            for i, t in zip(ids, texts, strict=True):
                yield i, hashes[i], t

    def size_on_disk(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    # --- writes ---------------------------------------------------------------------------

    def write(self, docs: Sequence[tuple[DocRecord, Sequence[tuple[Chunk, str, bytes]]]],
              sources: Sequence[SourceRecord] = (), remove_doc_ids: Sequence[str] = ()) -> Change:
        """Replace documents (old chunks go, new chunks come), record sources, remove documents: all or nothing."""
        now = time.time()
        removed: list[int] = []
        added: list[int] = []
        with self.transaction():
            for doc_id in remove_doc_ids:
                removed += self._delete_doc(doc_id)
            for doc, chunks in docs:
                row = self.db.execute("SELECT id, added_at FROM documents WHERE doc_id = ?", (doc.doc_id,)).fetchone()
                added_at = now
                if row:
                    added_at = row[1]
                    removed += self._delete_doc(doc.doc_id)
                cur = self.db.execute(
                    "INSERT INTO documents (doc_id, source, title, content_hash, chunk_sig, n_chunks, added_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc.doc_id, doc.source, doc.title, doc.content_hash, doc.chunk_sig, len(chunks), added_at, now))
                pk = cur.lastrowid
                for chunk, chunk_hash, vector in chunks:
                    c = self.db.execute(
                        "INSERT INTO chunks (doc, ordinal, text, heading, char_start, char_end, page, hash, vector) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pk, chunk.ordinal, chunk.text, json.dumps(list(chunk.heading_path)), chunk.char_start,
                         chunk.char_end, chunk.page, chunk_hash, vector))
                    added.append(int(c.lastrowid or 0))
            for src in sources:
                self.db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)",
                                (src.path, src.file_hash, src.size, src.chunk_sig, now))
            generation = self._bump()
        return Change(removed, added, generation)

    def append_chunks(self, doc_id: str, chunks: Sequence[tuple[Chunk, str, bytes]]) -> Change:
        """Add chunks to an existing document (a streamed one, written in bounded batches)."""
        added: list[int] = []
        with self.transaction():
            row = self.db.execute("SELECT id FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise CollectionError(f"document '{doc_id}' vanished while being written", "run the command again")
            for chunk, chunk_hash, vector in chunks:
                c = self.db.execute(
                    "INSERT INTO chunks (doc, ordinal, text, heading, char_start, char_end, page, hash, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row[0], chunk.ordinal, chunk.text, json.dumps(list(chunk.heading_path)), chunk.char_start,
                     chunk.char_end, chunk.page, chunk_hash, vector))
                added.append(int(c.lastrowid or 0))
            generation = self._bump()
        return Change([], added, generation)

    def finish_document(self, doc_id: str, content_hash: str, n_chunks: int) -> Change:
        with self.transaction():
            self.db.execute("UPDATE documents SET content_hash = ?, n_chunks = ?, updated_at = ? WHERE doc_id = ?",
                            (content_hash, n_chunks, time.time(), doc_id))
            generation = self._bump()
        return Change([], [], generation)

    def remove_documents(self, doc_ids: Sequence[str]) -> Change:
        """Remove documents and forget their sources, so adding a source again brings its documents back."""
        removed: list[int] = []
        with self.transaction():
            for doc_id in doc_ids:
                row = self.db.execute("SELECT source FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
                if row:
                    self.db.execute("DELETE FROM sources WHERE path = ?", (row[0],))
                removed += self._delete_doc(doc_id)
            generation = self._bump()
        return Change(removed, [], generation)

    def remove_sources(self, paths: Sequence[str]) -> Change:
        """Forget sources and every document read from them."""
        removed: list[int] = []
        with self.transaction():
            for path in paths:
                for (doc_id,) in self.db.execute("SELECT doc_id FROM documents WHERE source = ?", (path,)).fetchall():
                    removed += self._delete_doc(doc_id)
                self.db.execute("DELETE FROM sources WHERE path = ?", (path,))
            generation = self._bump()
        return Change(removed, [], generation)

    def replace_vectors(self, items: Sequence[tuple[int, bytes]], embedder: str, dim: int) -> int:
        with self.transaction():
            self.db.executemany("UPDATE chunks SET vector = ? WHERE id = ?", [(v, i) for i, v in items])
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("embedder", embedder), ("dim", str(dim))])
            return self._bump()

    def _delete_doc(self, doc_id: str) -> list[int]:
        row = self.db.execute("SELECT id FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if not row:
            return []
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc = ?", (row[0],))]
        self.db.execute("DELETE FROM chunks WHERE doc = ?", (row[0],))
        self.db.execute("DELETE FROM documents WHERE id = ?", (row[0],))
        return ids


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
