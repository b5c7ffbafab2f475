"""The one sentence splitter of chatkit: the chunker cuts over-long paragraphs between sentences, and
extractive answers and synthetic training answers quote whole sentences.

A boundary is end punctuation (then optional closing quotes or brackets) before whitespace and
something that can start a sentence (a capital, a digit, code in backticks), a blank line, or a line break before a list item. An
abbreviation ("e.g.", "Dr.") is no boundary; a decimal ("2.5") never is (no whitespace after the dot).
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=`|[\"'“‘(\[]?[A-Z0-9À-Ý])|\n\s*\n|\n(?=\s*(?:[-*+•]|\d+[.)])\s)")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Fig.", "fig.", "al.", "Dr.", "Mr.", "Mrs.", "Ms.", "No.", "approx.")
_FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^#+\s.*$", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_EMPHASIS = re.compile(r"\*\*|__")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, covering the text without its whitespace gaps."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        if text[max(0, end - 8) : end].endswith(_ABBREVIATIONS):
            continue
        if text[start:end].strip():
            spans.append((start, end))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _prose(text: str) -> str:
    """The text without code, tables and headings: they hold no sentence worth quoting."""
    blocks = _BLANK_LINE.split(_FENCED_CODE.sub("\n\n", text))
    kept = [b for b in blocks if b.strip() and not b.lstrip("\n").startswith(("    ", "\t", "|"))]
    return _HEADING.sub("", "\n\n".join(kept))


def split_sentences(text: str, min_words: int = 4, max_words: int = 60) -> list[str]:
    """The quotable sentences of a passage, whitespace and emphasis markup removed; each list item
    stands alone (joined items would glue unrelated claims into one sentence)."""
    prose = _prose(text)
    out = []
    for start, end in sentence_spans(prose):
        sentence = _EMPHASIS.sub("", " ".join(_LIST_MARKER.sub("", prose[start:end]).split()))
        if min_words <= len(sentence.split()) <= max_words:
            out.append(sentence)
    return out
