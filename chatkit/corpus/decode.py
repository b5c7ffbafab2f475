"""Reading bytes as UTF-8 text: refuse binaries and invalid UTF-8 with a precise reason."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from chatkit.corpus.blocks import ParseError

SNIFF_BYTES = 8192


def check_not_binary(head: bytes, path: Path) -> None:
    if b"\x00" in head:
        raise ParseError(f"{path}: looks like a binary file, not text", "give text files only, or fix the file's suffix")


def read_text(path: Path) -> str:
    data = path.read_bytes()
    check_not_binary(data[:SNIFF_BYTES], path)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{path}: not valid UTF-8 at byte {exc.start}", "re-save the file as UTF-8") from None


def stream_text(path: Path, block_bytes: int = 1 << 20) -> Iterator[str]:
    """Decoded pieces of a file of any size, with the same checks as read_text."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    offset = 0
    with path.open("rb") as fh:
        first = True
        while True:
            raw = fh.read(block_bytes)
            if first:
                check_not_binary(raw[:SNIFF_BYTES], path)
                first = False
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise ParseError(f"{path}: not valid UTF-8 at byte {offset + exc.start}", "re-save the file as UTF-8") from None
            if text:
                yield text
            if not raw:
                return
            offset += len(raw)
