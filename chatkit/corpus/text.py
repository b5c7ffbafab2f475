"""Plain text: paragraphs; files past a size limit are streamed so memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chatkit.corpus.blocks import MAX_BLOCK_CHARS, Block, paragraphs, split_oversized
from chatkit.corpus.decode import stream_text


def guess_title(text: str, fallback: str) -> str:
    first = text.lstrip().split("\n", 1)[0].strip()
    return first if 0 < len(first) <= 80 else fallback


def stream_paragraphs(path: Path) -> Iterator[Block]:
    """Blocks of a file of any size, holding at most about one read buffer plus one block in memory."""
    pending = ""
    base = 0  # char offset of `pending` in the file's text
    for piece in stream_text(path):
        pending += piece
        cut = pending.rfind("\n\n")
        if cut < 0 and len(pending) > MAX_BLOCK_CHARS:
            cut = pending.rfind("\n", 0, MAX_BLOCK_CHARS)
            cut = cut if cut > 0 else MAX_BLOCK_CHARS
        if cut < 0:
            continue
        head = pending[:cut]
        yield from paragraphs(head, base)
        base += cut
        pending = pending[cut:]
    if pending.strip():
        for block in paragraphs(pending, base):
            yield from (Block(t, at) for t, at in split_oversized(block.text, block.char_start))
