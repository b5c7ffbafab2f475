"""Embeddings cached by (embedder, chunk hash), shared by every collection: unchanged text is never re-embedded."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


class EmbeddingCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS embeddings (embedder TEXT NOT NULL, hash TEXT NOT NULL, "
                        "vector BLOB NOT NULL, PRIMARY KEY (embedder, hash)) WITHOUT ROWID")

    def get(self, embedder: str, hashes: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT hash, vector FROM embeddings WHERE embedder = ? AND hash IN ({marks})",
                                   [embedder, *part])
            out.update(rows.fetchall())
        return out

    def put(self, embedder: str, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        # A lost cache write only costs a re-embedding later, so a failure here never fails an index run.
        try:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", [(embedder, h, v) for h, v in items])
            self.db.execute("COMMIT")
        except sqlite3.OperationalError:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.db.close()
