"""One collection on disk: the SQLite store, the FAISS and BM25 files derived from it, the writer lock.

Derived files carry the store generation they were built from (`vectors-<gen>.faiss`, `bm25-<gen>/`);
when none matches the store, they are rebuilt from SQLite, so a writer killed at any point costs a
rebuild, never a wrong answer.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatkit.errors import CollectionError
from chatkit.retrieval.atomic import atomic_dir, atomic_file, remove_stale_temps
from chatkit.retrieval.crash import crash_point
from chatkit.retrieval.lexical import LexicalIndex
from chatkit.retrieval.store import Change, Store
from chatkit.retrieval.vectors import IndexParams, VectorIndex

STORE_FILE = "store.sqlite"
LOCK_FILE = "lock"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise CollectionError(f"invalid collection name '{name}'",
                              "use letters, digits, '-', '_' or '.', starting with a letter or digit")
    return name


class Collection:
    def __init__(self, folder: Path, name: str | None = None, params: IndexParams | None = None) -> None:
        self.folder = folder
        self.name = name or folder.name
        self.params = params or IndexParams()
        self._store: Store | None = None
        self.vectors: VectorIndex | None = None
        self.lexical: LexicalIndex | None = None

    # --- opening ----------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.folder / STORE_FILE).is_file()

    @property
    def store(self) -> Store:
        if self._store is None:
            if not self.exists:
                self.folder.mkdir(parents=True, exist_ok=True)
            self._store = Store(self.folder / STORE_FILE)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def lock(self, timeout: float = 600) -> Any:
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / LOCK_FILE), timeout=timeout)

    def acquire(self, timeout: float = 600, say: Any = None) -> Any:
        """The writer lock, waiting for another writer (with a note) up to `timeout` seconds."""
        from filelock import Timeout

        lock = self.lock(timeout=0)
        try:
            lock.acquire()
            return lock
        except Timeout:
            if say:
                say(f"collection '{self.name}' is being written by another process; waiting...")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise CollectionError(f"collection '{self.name}' is locked by another writer", f"wait for it to finish, or remove {self.folder / LOCK_FILE} if no chatkit is running") from None
        return lock

    def being_written(self) -> bool:
        """Whether another writer holds the lock right now (e.g. its first `index add` is running)."""
        from filelock import Timeout

        lock = self.lock(timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    @property
    def embedder_key(self) -> str | None:
        return self.store.meta("embedder") if self.exists else None

    def check_embedder(self, key: str) -> None:
        built = self.embedder_key
        if built and built != key:
            raise CollectionError(
                f"collection '{self.name}' was built with embedder {built}, the configured one is {key}",
                f"run `chatkit index rebuild --collection {self.name}` to re-embed it, or set models.embedder back")

    # --- derived indexes ------------------------------------------------------------------------

    def _vectors_path(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation}.faiss"

    def _bm25_path(self, generation: int) -> Path:
        return self.folder / f"bm25-{generation}"

    def load_indexes(self, dim: int, persist: bool = False) -> None:
        """Load the FAISS and BM25 files of the current generation, or rebuild them from SQLite."""
        store = self.store
        generation = store.generation
        chunks = store.counts()["chunks"]
        vectors: VectorIndex | None = None
        lexical: LexicalIndex | None = None
        try:
            if self._vectors_path(generation).is_file():
                vectors = VectorIndex.load(self._vectors_path(generation), self.params)
                if vectors.ntotal != chunks:
                    vectors = None
            if (self._bm25_path(generation) / "chunk_ids.npy").is_file():
                lexical = LexicalIndex.load(self._bm25_path(generation))
                if len(lexical) != chunks:
                    lexical = None
        except (OSError, RuntimeError, ValueError):
            vectors = lexical = None
        rebuilt = False
        if vectors is None:
            vectors = self.build_vectors(dim)
            rebuilt = True
        if lexical is None:
            lexical = self.build_lexical()
            rebuilt = True
        self.vectors, self.lexical = vectors, lexical
        if rebuilt and persist:
            self._try_persist()

    def _try_persist(self) -> None:
        """A reader that rebuilt the indexes saves them if no writer is busy; otherwise the writer will."""
        from filelock import Timeout

        try:
            with self.lock(timeout=0):
                self.save_indexes()
        except (Timeout, OSError):
            pass

    def build_vectors(self, dim: int) -> VectorIndex:
        import numpy as np

        store = self.store
        total = store.counts()["chunks"]
        index = VectorIndex.empty(dim, self.params.kind_for(total), self.params)
        for ids, blobs in store.iter_vectors():
            vecs = np.frombuffer(b"".join(blobs), dtype="float32").reshape(len(ids), dim)
            index.add(np.asarray(ids, dtype="int64"), vecs)
        return index

    def build_lexical(self) -> LexicalIndex:
        ids: list[int] = []
        texts: list[str] = []
        for part_ids, part_texts in self.store.iter_embed_texts():
            ids += part_ids
            texts += part_texts
        return LexicalIndex.build(ids, texts)

    def apply(self, changes: Sequence[Change], dim: int) -> None:
        """Bring the loaded indexes up to date after writes, in place where FAISS allows, and save them."""
        import numpy as np

        store = self.store
        removed = [i for c in changes for i in c.removed]
        added = [i for c in changes for i in c.added]
        total = store.counts()["chunks"]
        vectors = self.vectors
        if vectors is None or vectors.kind != self.params.kind_for(total) or not vectors.remove(removed):
            vectors = self.build_vectors(dim)
        else:
            gone = set(removed)
            fresh = [i for i in added if i not in gone]
            rows = store.chunks(fresh)
            ids = [i for i in fresh if i in rows]
            if ids:
                vecs = np.frombuffer(b"".join(rows[i][1] for i in ids), dtype="float32").reshape(len(ids), dim)
                vectors.add(np.asarray(ids, dtype="int64"), vecs)
            if vectors.ntotal != total:
                vectors = self.build_vectors(dim)
        self.vectors = vectors
        self.lexical = self.build_lexical()
        self.save_indexes()

    def save_indexes(self) -> None:
        """Write both derived indexes for the current generation, then delete older ones. Hold the lock."""
        assert self.vectors is not None and self.lexical is not None
        generation = self.store.generation
        vectors, lexical = self.vectors, self.lexical
        atomic_file(self._vectors_path(generation), vectors.save)
        crash_point("between-index-files")
        atomic_dir(self._bm25_path(generation), lexical.save)
        for p in self.folder.glob("vectors-*.faiss"):
            if p != self._vectors_path(generation):
                p.unlink(missing_ok=True)
        for p in self.folder.glob("bm25-*"):
            if p != self._bm25_path(generation):
                shutil.rmtree(p, ignore_errors=True)
        remove_stale_temps(self.folder)

    def index_files_fresh(self) -> bool:
        generation = self.store.generation
        return self._vectors_path(generation).is_file() and (self._bm25_path(generation) / "chunk_ids.npy").is_file()

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.folder)

    # --- a writer's session -------------------------------------------------------------------

    def begin_write(self) -> None:
        """Call under the lock before writing: remembers whether the derived files match the store."""
        remove_stale_temps(self.folder)
        self._start_generation = self.store.generation
        self._start_fresh = self.index_files_fresh()

    def finish_write(self, changes: Sequence[Change], dim: int) -> None:
        """Call under the lock after writing: updates the derived files (rebuilding them if they were stale)."""
        if not changes and getattr(self, "_start_fresh", False):
            return
        self.vectors = None
        if changes and self._start_fresh:
            try:
                self.vectors = VectorIndex.load(self._vectors_path(self._start_generation), self.params)
            except (OSError, RuntimeError):
                self.vectors = None
        self.apply(changes, dim)
