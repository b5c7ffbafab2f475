"""The sentences of retrieved passages that answer a question, for extractive answers.

A sentence is scored by its own similarity to the question, its passage's similarity (the context a
lone "It also ..." lacks) and the share of the question's terms it contains; the best few from the
top passages are quoted in reading order, each cited. Weights and counts were chosen on
corpora/qa/dev.jsonl (docs/RESULTS.md has the table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatkit.corpus.sentences import split_sentences
from chatkit.retrieval.lexical import analyze
from chatkit.types import Hit


@dataclass(frozen=True)
class QuoteChoice:
    passages: int = 2  # quote from the top passages only: lower ones are more often off-topic
    sentences: int = 3
    passage_weight: float = 1.0
    term_weight: float = 0.3
    margin: float = 0.1  # a sentence scoring this far below the best one is left out


@dataclass(frozen=True)
class Quote:
    n: int  # the passage's number, as cited
    text: str


def choose_quotes(questions: Sequence[str], hits: Sequence[Hit], embedder: Any,
                  choice: QuoteChoice = QuoteChoice()) -> list[Quote]:
    """The quotes for each question in turn (the parts of one multi-part question), without repeats;
    the passages' sentences are split, embedded and analysed once for all of them."""
    import numpy as np

    candidates = [(n, i, s) for n, h in enumerate(hits[: choice.passages], start=1)
                  for i, s in enumerate(split_sentences(h.chunk.text))]
    if not candidates or not questions:
        return []
    vectors = embedder.encode([*questions, *(s for _, _, s in candidates)])
    sentences = vectors[len(questions):]
    passage = np.array([hits[n - 1].dense_score or 0.0 for n, _, _ in candidates])
    sentence_terms = [set(analyze(s)) for _, _, s in candidates]
    quotes: list[Quote] = []
    for question, question_vector in zip(questions, vectors, strict=False):
        terms = set(analyze(question))
        overlap = np.array([len(terms & t) / len(terms) if terms else 0.0 for t in sentence_terms])
        score = sentences @ question_vector + choice.passage_weight * passage + choice.term_weight * overlap
        ranked = [int(i) for i in np.argsort(-score, kind="stable")]
        chosen = [i for i in ranked[: choice.sentences] if score[i] >= score[ranked[0]] - choice.margin]
        chosen.sort(key=lambda i: candidates[i][:2])
        quotes += [q for q in (Quote(candidates[i][0], candidates[i][2]) for i in chosen) if q not in quotes]
    return quotes
