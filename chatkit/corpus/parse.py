"""One entry point: a discovered file -> Parsed documents (and per-row Problems), or a ParseError."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from chatkit.corpus.blocks import Parsed, ParseError, Problem, paragraphs
from chatkit.corpus.decode import read_text
from chatkit.corpus.discover import SUFFIXES, Found
from chatkit.corpus.text import guess_title, stream_paragraphs
from chatkit.types import Document

# Text files past this many bytes are streamed: never read whole, chunks produced as they are read.
STREAM_BYTES = 8 << 20


def _fallback_title(found: Found) -> str:
    return found.path.stem.replace("-", " ").replace("_", " ").strip() or found.path.name


def parse_file(found: Found, file_hash: str, stream_bytes: int = STREAM_BYTES) -> Iterator[Parsed | Problem]:
    path, source = found.path, str(found.path)
    if not found.kind:
        raise ParseError(f"{path}: unsupported file type '{path.suffix or path.name}'",
                         f"supported: {', '.join(sorted(SUFFIXES))}")
    size = path.stat().st_size
    if size == 0:
        raise ParseError(f"{path}: empty file", "nothing to index; add text to it or leave it out")
    if found.kind == "jsonl":
        from chatkit.corpus.jsonl import parse_jsonl

        yield from parse_jsonl(path, source)
        return
    if found.kind == "pdf":
        from chatkit.corpus.pdf import parse_pdf

        title, text, blocks, pages = parse_pdf(path)
        yield Parsed(Document(found.doc_id, source, title or _fallback_title(found), text, file_hash, pages), blocks)
        return
    if found.kind == "text" and size > stream_bytes:
        stream = stream_paragraphs(path)
        first = next(stream, None)
        if first is None:
            raise ParseError(f"{path}: the file holds only whitespace", "nothing to index")
        title = guess_title(first.text, _fallback_title(found))
        doc = Document(found.doc_id, source, title, "", file_hash, meta=(("streamed", "1"),))
        yield Parsed(doc, itertools.chain([first], stream))
        return
    raw = read_text(path)
    if not raw.strip():
        raise ParseError(f"{path}: the file holds only whitespace", "nothing to index")
    if found.kind == "markdown":
        from chatkit.corpus.markdown import parse_markdown

        title, blocks = parse_markdown(raw)
        text = raw
    elif found.kind == "rst":
        from chatkit.corpus.rst import parse_rst

        title, text, blocks = parse_rst(raw, source)
    elif found.kind == "html":
        from chatkit.corpus.html import parse_html

        title, text, blocks = parse_html(raw)
    else:
        text, blocks = raw, list(paragraphs(raw))
        title = guess_title(raw, "")
    if not blocks:
        raise ParseError(f"{path}: no text found", "the file has markup but no readable text")
    yield Parsed(Document(found.doc_id, source, title or _fallback_title(found), text, file_hash), blocks)
