"""Small frozen values that cross layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Document:
    """One source document, already parsed to text."""

    doc_id: str
    source: str
    title: str
    text: str
    content_hash: str
    # (char_start, page_number) for documents with pages, e.g. PDFs.
    pages: tuple[tuple[int, int], ...] = ()
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of a document sized for the embedder."""

    doc_id: str
    ordinal: int
    text: str
    title: str
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int
    source: str = ""
    page: int | None = None
    chunk_id: int = -1

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def key(self) -> tuple[str, int]:
        """Identifies a chunk across collections (chunk_id is only unique within one)."""
        return self.doc_id, self.ordinal

    @property
    def embed_text(self) -> str:
        """What the embedder and BM25 see: title and heading path give a passage its context."""
        head = " > ".join(p for p in (self.title, *self.heading_path) if p)
        return f"{head}\n{self.text}" if head else self.text


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    collection: str = ""


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation."""

    question: str
    answer: str
    hits: tuple[Hit, ...] = ()
    turn_id: int | None = None


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str
    heading: str = ""


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    abstained: bool
    timings: dict[str, float] = field(default_factory=dict)
    dropped_citations: int = 0
    complete: bool = True


EventKind = Literal["retrieval", "token", "answer", "error", "progress"]


@dataclass(frozen=True)
class Event:
    """What the engine streams: retrieval done, a token, the final answer, an error."""

    kind: EventKind
    text: str = ""
    hits: tuple[Hit, ...] = ()
    answer: Answer | None = None
    data: dict[str, Any] = field(default_factory=dict)
