"""The sentences of retrieved passages that answer a question, for extractive answers.

A sentence is scored by its own similarity to the question, its passage's similarity (the context a
lone "It also ..." lacks) and the share of the question's terms it contains; the best few from the
top passages are quoted in reading order, each cited. Weights and counts were chosen on
corpora/qa/dev.jsonl (docs/RESULTS.md has the table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatkit.corpus.sentences import split_sentences
from chatkit.definitions import defines, definition_term
from chatkit.prompting import Passage
from chatkit.retrieval.lexical import analyze
from chatkit.types import Chunk, Hit

DEFINITION_BONUS = 1.0


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


def question_scores(question: str, question_vector: Any, sentence_vectors: Any, sentences: Sequence[str],
                    sentence_terms: Sequence[set[str]], term_weight: float = QuoteChoice.term_weight) -> Any:
    """How well each sentence answers `question`: its similarity, plus `term_weight` x the share of the
    question's terms it contains; for "What is X?" the sentence saying what X is comes first."""
    import numpy as np

    terms = set(analyze(question))
    overlap = np.array([len(terms & t) / len(terms) if terms else 0.0 for t in sentence_terms])
    score = sentence_vectors @ question_vector + term_weight * overlap
    if (term := definition_term(question)) is not None:
        score = score + np.array([DEFINITION_BONUS if defines(s, term) else 0.0 for s in sentences])
    return score


def choose_quotes(questions: Sequence[str], hits: Sequence[Hit], embedder: Any,
                  choice: QuoteChoice = QuoteChoice()) -> list[Quote]:
    """The quotes for each question in turn (the parts of one multi-part question), without repeats;
    the passages' sentences are split, embedded and analysed once for all of them."""
    import numpy as np

    candidates = [(n, i, s) for n, h in enumerate(hits[: choice.passages], start=1)
                  for i, s in enumerate(split_sentences(h.chunk.text))]
    if not candidates or not questions:
        return []
    texts = [s for _, _, s in candidates]
    vectors = embedder.encode([*questions, *texts])
    sentences = vectors[len(questions):]
    passage = np.array([hits[n - 1].dense_score or 0.0 for n, _, _ in candidates])
    sentence_terms = [set(analyze(s)) for s in texts]
    quotes: list[Quote] = []
    for question, question_vector in zip(questions, vectors, strict=False):
        score = question_scores(question, question_vector, sentences, texts, sentence_terms, choice.term_weight)
        score = score + choice.passage_weight * passage
        ranked = [int(i) for i in np.argsort(-score, kind="stable")]
        chosen = [i for i in ranked[: choice.sentences] if score[i] >= score[ranked[0]] - choice.margin]
        chosen.sort(key=lambda i: candidates[i][:2])
        quotes += [q for q in (Quote(candidates[i][0], candidates[i][2]) for i in chosen) if q not in quotes]
    return quotes


def evidence_passages(question: str, chunks: Sequence[Chunk], embedder: Any, sentences: int,
                      keep: Mapping[tuple[str, int], Sequence[str]] | None = None) -> list[Passage]:
    """What a prompt shows of each chunk: its `sentences` sentences that best answer the question (as
    extractive answers score them), in reading order, plus any sentences `keep` names for the chunk (by
    `Chunk.key`; a training answer's own sentences). A 135M model copies from a short prompt far better
    than from whole passages, and reads it faster. `sentences` <= 0 shows whole chunks."""
    keep = keep or {}
    split = [split_sentences(c.text) for c in chunks]
    flat = [s for ss in split for s in ss]
    if sentences <= 0 or not flat:
        return [Passage(c.title, c.heading, c.text) for c in chunks]
    vectors = embedder.encode([question, *flat])
    scores = question_scores(question, vectors[0], vectors[1:], flat, [set(analyze(s)) for s in flat])
    out, start = [], 0
    for chunk, ss in zip(chunks, split, strict=True):
        own = scores[start : start + len(ss)]
        start += len(ss)
        wanted = set(keep.get(chunk.key, ()))
        chosen = {i for i, s in enumerate(ss) if s in wanted}
        for i in sorted(range(len(ss)), key=lambda i: -own[i]):
            if len(chosen) >= max(sentences, len(wanted)):
                break
            chosen.add(i)
        text = " ".join(ss[i] for i in sorted(chosen)) if chosen else chunk.text
        out.append(Passage(chunk.title, chunk.heading, text))
    return out
