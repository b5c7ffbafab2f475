"""What a parser hands the chunker: a document plus its text blocks in reading order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from chatkit.errors import InputError
from chatkit.types import Document

# A block longer than this is cut at line or word boundaries so one block never holds a whole huge file.
MAX_BLOCK_CHARS = 16_000


class ParseError(InputError):
    """A whole file cannot be read; the pipeline turns it into a per-file warning."""


@dataclass(frozen=True)
class Block:
    """A paragraph-like run of text at `char_start` of the document text, under `heading_path`."""

    text: str
    char_start: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class Problem:
    """A per-row problem inside a file that is otherwise usable (e.g. one malformed JSONL line)."""

    source: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.reason}"


@dataclass
class Parsed:
    """A document and its blocks; `blocks` may be a generator when the file is streamed."""

    document: Document
    blocks: Iterable[Block] = field(default_factory=list)


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def split_oversized(text: str, start: int, limit: int = MAX_BLOCK_CHARS) -> Iterator[tuple[str, int]]:
    """Cut `text` (found at `start`) into pieces of at most `limit` chars, preferring line then word ends."""
    pos = 0
    while len(text) - pos > limit:
        window = text[pos : pos + limit]
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit - 1
        yield text[pos : pos + cut + 1], start + pos
        pos += cut + 1
    if pos < len(text):
        yield text[pos:], start + pos


def paragraphs(text: str, base: int = 0, heading_path: tuple[str, ...] = (), page: int | None = None) -> Iterator[Block]:
    """Blank-line separated paragraphs of `text` as blocks, offsets relative to `base`."""
    pos = 0
    n = len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n\f":
            pos += 1
        if pos >= n:
            break
        end = text.find("\n\n", pos)
        end = n if end < 0 else end
        piece = text[pos:end].rstrip()
        if piece:
            for sub, at in split_oversized(piece, base + pos):
                yield Block(sub, at, heading_path, page)
        pos = end + 2
