"""PDF via pypdf: the text layer page by page; pages are kept on every block."""

from __future__ import annotations

from pathlib import Path

from chatkit.corpus.blocks import Block, ParseError, paragraphs


def parse_pdf(path: Path) -> tuple[str, str, list[Block], tuple[tuple[int, int], ...]]:
    """(title, text, blocks, pages as (char_start, page_number))."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs every recoverable oddity; those are not the user's problem.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise ParseError(f"{path}: the PDF is encrypted", "save an unencrypted copy") from None
        texts = [(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except ParseError:
        raise
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"{path}: cannot read the PDF: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         "check the file is a complete PDF") from None
    if not any(t.strip() for t in texts):
        raise ParseError(f"{path}: the PDF has no text layer ({len(texts)} pages of images?)",
                         "run OCR on it first (e.g. ocrmypdf), then add the result")
    parts: list[str] = []
    blocks: list[Block] = []
    pages: list[tuple[int, int]] = []
    pos = 0
    for number, text in enumerate(texts, start=1):
        text = text.replace("\x00", "").strip()
        pages.append((pos, number))
        blocks.extend(paragraphs(text, pos, (), number))
        parts.append(text)
        pos += len(text) + 2
    return str(meta_title).strip(), "\n\n".join(parts), blocks, tuple(pages)
