"""`index add / status / sync`: discover files, skip what is unchanged by content hash, parse, chunk,
embed (through the shared cache) and write to a collection in all-or-nothing batches."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.corpus.blocks import Parsed, ParseError, Problem, sha256_text
from chatkit.corpus.chunker import Chunker
from chatkit.corpus.discover import Found, discover
from chatkit.corpus.parse import STREAM_BYTES, parse_file
from chatkit.errors import InputError
from chatkit.indexing.report import QuietReporter, Reporter, Summary
from chatkit.models import file_sha256
from chatkit.retrieval.cache import EmbeddingCache
from chatkit.retrieval.collection import Collection
from chatkit.retrieval.crash import crash_point
from chatkit.retrieval.embedder import Embedder
from chatkit.retrieval.store import Change, DocRecord, SourceRecord
from chatkit.types import Chunk, Document

CHUNKER_VERSION = 1


def chunk_signature(settings: Settings) -> str:
    """Documents chunked under another signature count as changed and are re-chunked."""
    r = settings.retrieval
    return f"v{CHUNKER_VERSION}:{r.chunk_tokens}:{r.chunk_overlap}"


class EmbedderTokens:
    """The chunker's view of the embedder's tokenizer."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def count(self, texts: Sequence[str]) -> list[int]:
        return self.embedder.count_tokens_batch(texts)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.embedder.token_offsets(text)


@dataclass
class FileStatus:
    found: Found
    state: str  # new | changed | unchanged
    file_hash: str
    size: int


@dataclass
class Plan:
    files: list[FileStatus]
    missing: list[str]  # stored sources under the given paths whose files are gone

    def count(self, state: str) -> int:
        return sum(1 for f in self.files if f.state == state)


def _under(source: str, roots: Iterable[Path]) -> bool:
    return any(source == str(r) or source.startswith(str(r).rstrip("/") + "/") for r in roots)


def make_plan(collection: Collection, paths: Sequence[str | Path], glob: str | None, signature: str) -> Plan:
    """Compare files with what the collection holds, by content hash; writes nothing."""
    found = discover(list(paths), glob)
    stored = {s.path: s for s in collection.store.sources()} if collection.exists else {}
    files = []
    for f in found:
        try:
            digest, size = file_sha256(f.path), f.path.stat().st_size
        except OSError as exc:
            raise InputError(f"cannot read {f.path}: {exc.strerror}", "check the file's permissions") from None
        src = stored.get(str(f.path))
        if src is None:
            state = "new"
        elif src.file_hash != digest or src.chunk_sig != signature:
            state = "changed"
        else:
            state = "unchanged"
        files.append(FileStatus(f, state, digest, size))
    roots = [Path(p).expanduser().resolve() for p in paths]
    missing = [s for s in stored if _under(s, roots) and not Path(s).exists()]
    return Plan(files, sorted(missing))


@dataclass
class _PendingDoc:
    record: DocRecord
    chunks: list[Chunk]
    is_new: bool


@dataclass
class _Batch:
    docs: list[_PendingDoc] = field(default_factory=list)
    sources: list[SourceRecord] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)

    @property
    def chunk_count(self) -> int:
        return sum(len(d.chunks) for d in self.docs)


class Indexer:
    """One writer session on one collection; use `run` inside `with collection lock`."""

    def __init__(self, settings: Settings, paths: Paths, collection: Collection, embedder: Embedder,
                 reporter: Reporter | None = None, stream_bytes: int = STREAM_BYTES) -> None:
        self.settings = settings
        self.collection = collection
        self.embedder = embedder
        self.reporter = reporter or QuietReporter()
        self.cache = EmbeddingCache(paths.cache / "embeddings.sqlite")
        self.signature = chunk_signature(settings)
        r = settings.retrieval
        self.chunker = Chunker(EmbedderTokens(embedder), min(r.chunk_tokens, embedder.max_tokens - 2), r.chunk_overlap)
        self.group = max(r.batch_size * 16, 32)
        self.stream_bytes = stream_bytes
        self.changes: list[Change] = []

    # --- entry points ---------------------------------------------------------------------------

    def add(self, plan: Plan, remove_missing: bool = False) -> Summary:
        summary = Summary(self.collection.name)
        started = time.perf_counter()
        col = self.collection
        col.check_embedder(self.embedder.key)
        col.begin_write()
        store = col.store
        if store.meta("embedder") is None:
            store.set_meta("embedder", self.embedder.key)
            store.set_meta("dim", str(self.embedder.dim))
        self.reporter.start("parse", sum(1 for f in plan.files if f.state != "unchanged") or None, "files")
        batch = _Batch()
        seen: dict[str, str] = {}
        for status in plan.files:
            if status.state == "unchanged":
                summary.skipped += len(store.doc_hashes(str(status.found.path))) or 1
                continue
            batch = self._add_file(status, batch, seen, summary)
            self.reporter.advance("parse")
        if remove_missing and plan.missing:
            for source in plan.missing:
                summary.removed += len(store.doc_hashes(source))
            batch = self._flush(batch, summary)
            self.changes.append(store.remove_sources(plan.missing))
        self._flush(batch, summary, final=True)
        crash_point("before-index-save")
        self.reporter.start("index", None, "steps")
        col.finish_write(self.changes, self.embedder.dim)
        self.reporter.close()
        summary.seconds = time.perf_counter() - started
        return summary

    # --- one file -------------------------------------------------------------------------------

    def _add_file(self, status: FileStatus, batch: _Batch, seen: dict[str, str], summary: Summary) -> _Batch:
        found = status.found
        source = str(found.path)
        old = self.collection.store.doc_hashes(source)
        here: set[str] = set()
        problems = 0
        try:
            for item in parse_file(found, status.file_hash, self.stream_bytes):
                if isinstance(item, Problem):
                    problems += 1
                    summary.fail(str(item))
                    self.reporter.warn(str(item))
                    continue
                doc = item.document
                if doc.doc_id in seen and seen[doc.doc_id] != source:
                    problems += 1
                    reason = f"{source}: doc id '{doc.doc_id}' is also given by {seen[doc.doc_id]} (skipped)"
                    summary.fail(reason)
                    self.reporter.warn(reason)
                    continue
                seen[doc.doc_id] = source
                here.add(doc.doc_id)
                if old.get(doc.doc_id) == (doc.content_hash, self.signature):
                    summary.skipped += 1
                    continue
                is_new = self.collection.store.document(doc.doc_id) is None
                if dict(doc.meta).get("streamed"):
                    batch = self._flush(batch, summary)
                    self._add_streamed(item, is_new, summary)
                    continue
                chunks = list(self.chunker.chunks(doc, item.blocks))
                batch.docs.append(_PendingDoc(self._record(doc, len(chunks)), chunks, is_new))
                if batch.chunk_count >= self.group:
                    batch = self._flush(batch, summary)
        except ParseError as exc:
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            summary.fail(reason)
            self.reporter.warn(reason)
            return batch
        except OSError as exc:
            summary.fail(f"{source}: cannot read: {exc.strerror}")
            self.reporter.warn(f"{source}: cannot read: {exc.strerror}")
            return batch
        if problems:
            # Rows we could not read may be documents we hold: keep those, and retry the file next time.
            return batch
        batch.remove += [d for d in old if d not in here]
        summary.removed += len([d for d in old if d not in here])
        batch.sources.append(SourceRecord(source, status.file_hash, status.size, self.signature))
        return batch

    def _record(self, doc: Document, n_chunks: int, content_hash: str | None = None) -> DocRecord:
        return DocRecord(doc.doc_id, doc.source, doc.title, content_hash or doc.content_hash, self.signature, n_chunks)

    def _add_streamed(self, item: Parsed, is_new: bool, summary: Summary) -> None:
        """A huge document: its chunks go in bounded batches; it is marked complete only at the end."""
        store = self.collection.store
        doc = item.document
        # Until the last batch lands the document carries a hash no file has, so a crash makes it "changed".
        partial = self._record(doc, 0, content_hash=f"partial:{doc.content_hash}")
        self.changes.append(store.write([(partial, [])]))
        count = 0
        pending: list[Chunk] = []
        for chunk in self.chunker.chunks(doc, item.blocks):
            pending.append(chunk)
            if len(pending) >= self.group:
                self.changes.append(store.append_chunks(doc.doc_id, self._embed(pending, summary)))
                count += len(pending)
                pending = []
        if pending:
            self.changes.append(store.append_chunks(doc.doc_id, self._embed(pending, summary)))
            count += len(pending)
        self.changes.append(store.finish_document(doc.doc_id, doc.content_hash, count))
        summary.chunks += count
        if is_new:
            summary.added += 1
        else:
            summary.updated += 1

    # --- embedding and writing -------------------------------------------------------------------

    def _embed(self, chunks: list[Chunk], summary: Summary) -> list[tuple[Chunk, str, bytes]]:
        texts = [c.embed_text for c in chunks]
        hashes = [sha256_text(t) for t in texts]
        key = self.embedder.key
        found = self.cache.get(key, hashes)
        todo: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in found:
                todo.setdefault(h, t)
        summary.cached += len(chunks) - sum(1 for h in hashes if h not in found)
        if todo:
            # Sorted by length so every model batch holds texts of about the same size (less padding).
            order = sorted(todo, key=lambda h: len(todo[h]))
            crash_point("mid-embed")
            vecs = self.embedder.encode([todo[h] for h in order],
                                        on_batch=lambda n: self.reporter.advance("embed", n))
            fresh = [(h, vecs[i].tobytes()) for i, h in enumerate(order)]
            self.cache.put(key, fresh)
            found.update(fresh)
            summary.embedded += len(todo)
        return [(c, h, found[h]) for c, h in zip(chunks, hashes, strict=True)]

    def _flush(self, batch: _Batch, summary: Summary, final: bool = False) -> _Batch:
        if not batch.docs and not batch.sources and not batch.remove:
            return batch
        if batch.docs and not getattr(self, "_embed_started", False):
            self.reporter.start("embed", None, "chunks")
            self._embed_started = True
        flat = [c for d in batch.docs for c in d.chunks]
        embedded = self._embed(flat, summary)
        rows: list[tuple[DocRecord, list[tuple[Chunk, str, bytes]]]] = []
        pos = 0
        for d in batch.docs:
            rows.append((d.record, embedded[pos : pos + len(d.chunks)]))
            pos += len(d.chunks)
        change = self.collection.store.write(rows, batch.sources, batch.remove)
        self.changes.append(change)
        crash_point("after-write")
        summary.chunks += len(flat)
        for d in batch.docs:
            if d.is_new:
                summary.added += 1
            else:
                summary.updated += 1
        return _Batch()


def run_add(settings: Settings, paths: Paths, collection: Collection, embedder: Embedder, inputs: Sequence[str | Path],
            glob: str | None = None, reporter: Reporter | None = None, remove_missing: bool = False,
            say: Any = None) -> Summary:
    """Plan and apply under the collection's writer lock."""
    discover(list(inputs), glob)  # a missing path fails here, before the lock or any write
    lock = collection.acquire(say=say)
    try:
        # Planned under the lock: another writer may have just added the same files.
        plan = make_plan(collection, inputs, glob, chunk_signature(settings))
        return Indexer(settings, paths, collection, embedder, reporter).add(plan, remove_missing)
    finally:
        lock.release()

