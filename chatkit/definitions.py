"""Definition questions ("What is LoRA?") answered by the passage that defines the term.

An embedder ranks passages that use a term often above the one sentence that says what it is: for
"What is LoRA" the lesson's "LoRA (Low-Rank Adaptation) is the most widely used ..." ranked below eight
passages about LoRA's cost and settings. So a passage among the candidates that opens a sentence with
"<term> is/are/means ..." is moved to the front."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from chatkit.corpus.sentences import split_sentences
from chatkit.types import Hit

_QUESTION = re.compile(r"^\s*(?:so|ok|and|but)?\s*(?:what\s+(?:is|are)|what's|whats|define|explain)\s+(?:an?\s+|the\s+)?"
                       r"(?P<term>[^?]+?)\s*\??\s*$", re.IGNORECASE)
_LEAD = re.compile(r"^[\s\-*•>]*(?:\*\*)?(?:an?\s+|the\s+)?", re.IGNORECASE)
_VERB = r"(?:\*\*)?\s*(?:\([^)]{1,80}\)\s*)?(?:,[^,.]{1,80},\s*)?(?:is|are|means|refers to|stands for)\b"
MAX_TERM_WORDS = 5


def definition_term(question: str) -> str | None:
    """The term a "what is X" question asks about, or None for other questions."""
    match = _QUESTION.match(question)
    if not match:
        return None
    term = match.group("term").strip(" .")
    term = re.sub(r"\s*\([^)]*\)$", "", term)  # "rope (rotary position embedding)" -> "rope"
    return term if 0 < len(term.split()) <= MAX_TERM_WORDS else None


def defines(text: str, term: str) -> bool:
    """Whether a sentence of `text` starts by saying what `term` is."""
    pattern = re.compile(re.escape(term) + _VERB, re.IGNORECASE)
    return any(pattern.match(_LEAD.sub("", sentence, count=1)) for sentence in split_sentences(text))


def definition_first(question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The top `k` of `hits`, with the best-ranked passage defining the question's term (if any) first."""
    term = definition_term(question)
    hits = list(hits)
    if term:
        for i, hit in enumerate(hits):
            if defines(hit.chunk.text, term):
                hits.insert(0, hits.pop(i))
                break
    return [h if h.rank == n else dataclasses.replace(h, rank=n) for n, h in enumerate(hits[:k], start=1)]
