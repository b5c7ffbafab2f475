"""Find the question's words in a passage, for highlighting in the sources pane."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its of on or the this that to was what when "
    "where which who why will with you your me my about into than then there these those not no".split()
)


def question_terms(question: str) -> set[str]:
    return {w for w in re.findall(r"[\w'-]+", question.lower()) if len(w) > 1 and w not in STOPWORDS}


def matching_spans(text: str, question: str) -> list[tuple[int, int]]:
    """(start, end) of each word in `text` that also occurs in the question; a plural or -ing form counts."""
    terms = question_terms(question)
    stems = {_stem(t) for t in terms}
    spans = []
    for m in re.finditer(r"[\w'-]+", text):
        word = m.group().lower()
        if word in terms or (len(word) > 3 and _stem(word) in stems):
            spans.append((m.start(), m.end()))
    return spans


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
