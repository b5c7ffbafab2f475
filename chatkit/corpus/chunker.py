"""Structure-aware chunking sized in embedder tokens.

Chunks never cross a heading or a page; inside a section whole paragraphs are packed, an over-long paragraph is cut
between sentences, an over-long sentence between tokens, an over-long token (a 1 MB "word" that a WordPiece
tokenizer counts as one [UNK]) between characters. Consecutive chunks of a section share about
`overlap` tokens. The budget leaves room for the title and heading path that the embedder sees too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatkit.corpus.blocks import Block
from chatkit.corpus.sentences import sentence_spans
from chatkit.types import Chunk, Document

# Text is weighed as at least one token per this many characters, so a chunk is never longer than
# max_tokens * CHARS_PER_TOKEN characters whatever the tokenizer says (ordinary prose runs at ~4-5).
CHARS_PER_TOKEN = 16


def weight(text: str, tokens: int) -> int:
    """Tokens as the packer counts them: the tokenizer's count, or the length bound if that is more."""
    return max(tokens, -(-len(text) // CHARS_PER_TOKEN))


class TokenCounter(Protocol):
    def count(self, texts: Sequence[str]) -> list[int]: ...

    def offsets(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class _Unit:
    text: str
    start: int
    tokens: int
    block: int
    page: int | None

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def header_text(title: str, heading_path: tuple[str, ...]) -> str:
    return " > ".join(p for p in (title, *heading_path) if p)


class Chunker:
    def __init__(self, counter: TokenCounter, max_tokens: int = 256, overlap: int = 32, min_body: int = 32) -> None:
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.min_body = min(min_body, max_tokens)

    def chunks(self, doc: Document, blocks: Iterable[Block]) -> Iterator[Chunk]:
        ordinal = 0
        units: list[_Unit] = []
        path: tuple[str, ...] = ()
        page: int | None = None
        budget = self._budget(doc.title, path)
        for index, block in enumerate(blocks):
            # A heading or a page starts a new chunk: a citation then names one section and one page.
            if block.heading_path != path or block.page != page:
                done, units = self._pack(doc, path, units, budget, ordinal)
                ordinal += len(done)
                yield from done
                page = block.page
                if block.heading_path != path:
                    path = block.heading_path
                    budget = self._budget(doc.title, path)
            units.extend(self._units(block, index, budget))
            # Emit full chunks as soon as there are several, so a huge section streams in bounded memory.
            if sum(u.tokens for u in units) > 8 * budget:
                done, units = self._pack(doc, path, units, budget, ordinal, final=False)
                ordinal += len(done)
                yield from done
        done, _ = self._pack(doc, path, units, budget, ordinal)
        yield from done

    def _budget(self, title: str, path: tuple[str, ...]) -> int:
        head = header_text(title, path)
        head_tokens = self.counter.count([head])[0] + 1 if head else 0
        return max(self.min_body, self.max_tokens - head_tokens)

    def _units(self, block: Block, index: int, budget: int) -> list[_Unit]:
        text = block.text
        (n,) = self.counter.count([text])
        if weight(text, n) <= budget:
            return [_Unit(text, block.char_start, weight(text, n), index, block.page)]
        spans = sentence_spans(text)
        counts = self.counter.count([text[a:b] for a, b in spans])
        out: list[_Unit] = []
        for (a, b), c in zip(spans, counts, strict=True):
            if weight(text[a:b], c) <= budget:
                out.append(_Unit(text[a:b], block.char_start + a, weight(text[a:b], c), index, block.page))
            else:
                out.extend(self._token_windows(text[a:b], block.char_start + a, budget, index, block.page))
        return out

    def _token_windows(self, text: str, start: int, budget: int, index: int, page: int | None) -> list[_Unit]:
        offsets = _bounded(self.counter.offsets(text))
        out = []
        for i in range(0, len(offsets), budget):
            window = offsets[i : i + budget]
            a = offsets[i][0] if i else 0
            b = window[-1][1] if i + budget < len(offsets) else len(text)
            if text[a:b].strip():
                out.append(_Unit(text[a:b], start + a, weight(text[a:b], len(window)), index, page))
        return out

    def _tail(self, units: list[_Unit]) -> list[_Unit]:
        """The last `overlap` tokens of a chunk, as whole units where possible."""
        if self.overlap <= 0 or not units:
            return []
        tail: list[_Unit] = []
        total = 0
        for unit in reversed(units):
            if total + unit.tokens > self.overlap:
                break
            tail.insert(0, unit)
            total += unit.tokens
        if tail:
            return tail
        last = units[-1]
        offsets = self.counter.offsets(last.text)
        if len(offsets) <= self.overlap:
            return [last]
        cut = offsets[-self.overlap][0]
        # Start the overlap at a word, not in the middle of one.
        while 0 < cut < len(last.text) and not last.text[cut - 1].isspace():
            cut += 1
        piece = last.text[cut:]
        if not piece.strip():
            return []
        return [_Unit(piece, last.start + cut, self.overlap, last.block, last.page)]

    def _pack(self, doc: Document, path: tuple[str, ...], units: list[_Unit], budget: int, ordinal: int,
              final: bool = True) -> tuple[list[Chunk], list[_Unit]]:
        """Chunks made of `units`; unless `final`, the unfinished last chunk's units are handed back."""
        chunks: list[Chunk] = []
        current: list[_Unit] = []
        tokens = 0
        fresh = 0  # units in `current` that are not overlap carried from the previous chunk
        for unit in units:
            if current and tokens + unit.tokens > budget and fresh:
                chunks.append(self._chunk(doc, path, current, ordinal + len(chunks)))
                current = self._tail(current)
                tokens = sum(u.tokens for u in current)
                fresh = 0
                while current and tokens + unit.tokens > budget:
                    tokens -= current.pop(0).tokens
            current.append(unit)
            tokens += unit.tokens
            fresh += 1
        if not final:
            return chunks, current
        if current and fresh:
            chunks.append(self._chunk(doc, path, current, ordinal + len(chunks)))
        return chunks, []

    def _chunk(self, doc: Document, path: tuple[str, ...], units: list[_Unit], ordinal: int) -> Chunk:
        parts = [units[0].text]
        for prev, unit in zip(units, units[1:], strict=False):
            if unit.start < prev.end:  # overlap piece inside the previous unit: join without duplicating
                parts.append(unit.text[prev.end - unit.start :])
                continue
            parts.append(" " if unit.block == prev.block else "\n\n")
            parts.append(unit.text)
        return Chunk(doc_id=doc.doc_id, ordinal=ordinal, text="".join(parts).strip(), title=doc.title,
                     heading_path=path, char_start=units[0].start, char_end=max(u.end for u in units),
                     source=doc.source, page=units[0].page)


def _bounded(offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token spans with every span longer than CHARS_PER_TOKEN characters cut into pieces that long."""
    out: list[tuple[int, int]] = []
    for a, b in offsets:
        out.extend((i, min(i + CHARS_PER_TOKEN, b)) for i in range(a, b, CHARS_PER_TOKEN))
        if a == b:
            out.append((a, b))
    return out
