"""Does the retrieved text support the question at all? Refusing is decided here and by the dense
score, never left to the dialogue model: a question whose rare terms the passages lack (a "Mamba",
a "Discord channel") or that no document of the collections ever mentions is refused, while typos of
known terms ("probabilites") still count as known."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chatkit.retrieval.lexical import analyze, long_stopword_list
from chatkit.types import Hit

# Words that carry no topic in a question (BM25's own stopword list is short: "does" reaches it as "doe").
_QUESTION_WORDS = ("whats what's hows pls please thanks tell explain mean means would could also get use using "
                   "used make need want know way good best better difference diff vs versus")
_FUNCTION_TERMS: list[frozenset[str]] = []
TYPO_SIMILARITY = 0.8  # difflib ratio for a term absent from every document to count as a typo of a known one


@dataclass(frozen=True)
class TermStatistics:
    """Document frequencies of BM25 terms over the searched collections."""

    document_frequency: Mapping[str, int]
    documents: int

    def idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.document_frequency.get(term, 0) + 0.5))


@dataclass(frozen=True)
class QuestionSupport:
    coverage: float  # IDF-weighted share of the question's terms that occur in the passages
    unknown_terms: tuple[str, ...]  # question terms no document contains (typos of known terms excluded)


def question_support(question: str, hits: Sequence[Hit], stats: TermStatistics) -> QuestionSupport:
    asked = sorted(set(analyze(question)) - _function_terms())
    if not asked:
        return QuestionSupport(1.0, ())
    # A typo stands for the known term it resembles ("paramters" is "paramet"), for coverage too.
    known = {t: t if t in stats.document_frequency else _closest_known(t, stats) for t in asked}
    terms = sorted({k for k in known.values() if k})
    unknown = tuple(t for t, k in known.items() if not k)
    seen: set[str] = set()
    for hit in hits:
        seen.update(analyze(hit.chunk.embed_text))
    weights = {t: stats.idf(t) for t in terms} | {t: stats.idf(t) for t in unknown}
    total = sum(weights.values())
    coverage = sum(weights[t] for t in terms if t in seen) / total if total > 0 else 1.0
    return QuestionSupport(coverage, unknown)


def _function_terms() -> frozenset[str]:
    if not _FUNCTION_TERMS:
        words = [*long_stopword_list(), *_QUESTION_WORDS.split()]
        _FUNCTION_TERMS.append(frozenset(t for w in words for t in analyze(w.replace("'", " "))) | frozenset(words))
    return _FUNCTION_TERMS[0]


def _closest_known(term: str, stats: TermStatistics) -> str:
    """The known term `term` is a typo of, or "" when it is none."""
    if len(term) < 5:
        return ""
    vocabulary = [t for t in stats.document_frequency if abs(len(t) - len(term)) <= 2]
    match = difflib.get_close_matches(term, vocabulary, n=1, cutoff=TYPO_SIMILARITY)
    return match[0] if match else ""
