"""JSONL: one document per row. BEIR corpus rows (`_id`, `title`, `text`) or any rows with a `text` field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chatkit.corpus.blocks import Parsed, ParseError, Problem, paragraphs, sha256_text
from chatkit.corpus.decode import SNIFF_BYTES, check_not_binary
from chatkit.inputs import parse_json_line
from chatkit.types import Document


def parse_jsonl(path: Path, source: str) -> Iterator[Parsed | Problem]:
    with path.open("rb") as fh:
        check_not_binary(fh.read(SNIFF_BYTES), path)
    good = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            row, problem = parse_json_line(raw)
            if problem:
                yield Problem(source, f"{problem} (row skipped)", number)
                continue
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                yield Problem(source, "row has no string 'text' field (row skipped)", number)
                continue
            text = row["text"].strip()
            if not text:
                yield Problem(source, "row has an empty 'text' (row skipped)", number)
                continue
            raw_id = row.get("_id", row.get("id"))
            doc_id = str(raw_id) if raw_id not in (None, "") else f"{path.stem}/{number}"
            title = str(row.get("title") or "").strip()
            doc = Document(doc_id=doc_id, source=source, title=title, text=text,
                           content_hash=sha256_text(title, text), meta=(("line", str(number)),))
            good += 1
            yield Parsed(doc, list(paragraphs(text)))
    if not good:
        raise ParseError(f"{path}: no usable rows", "each line must be a JSON object with a 'text' field")
