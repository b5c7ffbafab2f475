"""Candidate questions for `chatkit data synth`, each with the passage sentences that answer it.

An answer quotes whole units of a chunk: a sentence, or one list item of a sentence that the chunker glued
from several ("... (lesson 12). - Efficient Estimation ..."). Each quote remembers the passage sentence that
holds it, so the prompt always shows that sentence and the quote is verbatim in the cited passage."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from chatkit.corpus.sentences import split_sentences
from chatkit.training.synth_questions import (
    STOP,
    Resource,
    casual_variants,
    comparison_question,
    definition_questions,
    definition_term,
    heading_question,
    multi_part_question,
    normalize,
    recommendation_questions,
    resource_kind,
    seeded,
)
from chatkit.types import Chunk

_GLUED_ITEM = re.compile(r"(?<=[.!?:)])\s+-\s+(?=[A-Z0-9`\"(])")
_BOLD_ENTRY = re.compile(r"(?:^|\s)-\s+\*\*(.+?)\*\*")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Quote:
    text: str  # what the answer says
    sentence: str  # the passage sentence holding it


@dataclass(frozen=True)
class Part:
    """One part of an answer: quotes from one supporting chunk, cited together."""

    chunk: Chunk
    quotes: tuple[Quote, ...]


@dataclass(frozen=True)
class Item:
    """One grounded question, answered part by part."""

    question: str
    parts: tuple[Part, ...]
    kind: str  # definition | heading | variant | multi-part | comparison | recommendation
    topic: str = ""  # the defined term, for comparisons

    @property
    def chunk(self) -> Chunk:
        return self.parts[0].chunk

    @property
    def docs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.chunk.doc_id for p in self.parts))


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOP and len(w) > 2}


def _answerable(s: str) -> bool:
    # Table rows, cut-off fragments and list introductions ("... as follows:") make poor answers.
    return bool(re.match(r"[A-Z0-9`\"(]", s)) and "|" not in s and not s.rstrip().endswith(":") and len(s.split()) >= 4


def quotes_of(chunk: Chunk) -> list[Quote]:
    out = []
    for sentence in split_sentences(chunk.text):
        out += [Quote(piece, sentence) for piece in _GLUED_ITEM.split(sentence) if _answerable(piece)]
    return out


def _supporting(question: str, quotes: Sequence[Quote], limit: int) -> tuple[Quote, ...]:
    """The best-overlapping quote first and, when it helps, the one after it."""
    words = content_words(question)
    best = max(range(len(quotes)), key=lambda i: (len(words & content_words(quotes[i].text)), -i))
    return tuple(quotes[best : best + min(limit, 2)])


def base_items(chunk: Chunk, max_sentences: int) -> list[Item]:
    """Heading questions and every definition sentence's questions ("What is X?", "what's X", "explain X")."""
    quotes = quotes_of(chunk)
    if len(quotes) < 2:
        return []
    out = []
    hq = heading_question(chunk.heading_path[-1] if chunk.heading_path else "", chunk.title)
    if hq:
        out.append(Item(hq, (Part(chunk, _supporting(hq, quotes, max_sentences)),), "heading"))
    for i, q in enumerate(quotes):
        term = definition_term(q.text)
        if term is None or q.sentence != q.text:
            continue
        answer = (Part(chunk, tuple(quotes[i : i + max_sentences])),)
        out += [Item(question, answer, "definition", term.name) for question in definition_questions(term)]
    return out


def variant_items(items: Sequence[Item], seed: int, vocabulary: Collection[str], per_item: int) -> list[Item]:
    return [Item(v, it.parts, "variant", it.topic) for it in items
            for v in casual_variants(it.question, seed, vocabulary, per_item)]


def _plain(item: Item) -> bool:
    return item.kind == "heading" or (item.kind == "definition" and item.question.startswith("What "))


def _joinable(item: Item) -> bool:
    # A question that already has an "and", or a long "what does the material say about" one, reads badly in a pair.
    return _plain(item) and " and " not in item.question and not item.question.startswith(
        ("What does the material say", "What should I know about"))


def multi_part_items(items: Sequence[Item], seed: int) -> list[Item]:
    """Two questions about one document asked at once, answered in the order asked."""
    by_doc: dict[str, list[Item]] = {}
    for it in items:
        if _joinable(it):
            by_doc.setdefault(it.chunk.doc_id, []).append(it)
    out = []
    for doc, group in sorted(by_doc.items()):
        seeded(seed, "multi", doc).shuffle(group)
        for step in (1, 2, 3):
            for a, b in zip(group, group[step:], strict=False):
                if {q.text for q in a.parts[0].quotes} & {q.text for q in b.parts[0].quotes} or a.topic and a.topic == b.topic:
                    continue
                question = multi_part_question(a.question, b.question, seed)
                if question:
                    out.append(Item(question, (a.parts[0], b.parts[0]), "multi-part"))
    return out


def comparison_items(items: Sequence[Item], embedder: Any, seed: int) -> list[Item]:
    """Each defined term against its closest other term of the same collection; only the closer half of
    those pairs is kept (a term's nearest neighbour can still be far)."""
    defs = {it.topic.lower(): it for it in items if it.kind == "definition" and it.question.startswith("What ")}
    terms = list(defs.values())
    if len(terms) < 2:
        return []
    vectors = embedder.encode([t.parts[0].quotes[0].text for t in terms])
    similarity = vectors @ vectors.T
    collection = [t.chunk.doc_id.rpartition("/")[0] for t in terms]
    pairs: dict[tuple[int, int], float] = {}
    for i, a in enumerate(terms):
        near = [j for j in range(len(terms)) if j != i and collection[j] == collection[i]
                and a.topic.lower() not in terms[j].topic.lower() and terms[j].topic.lower() not in a.topic.lower()]
        if near:
            j = max(near, key=lambda j: float(similarity[i, j]))
            pairs[(min(i, j), max(i, j))] = float(similarity[i, j])
    closest = sorted(pairs, key=lambda p: -pairs[p])[: max(1, (len(pairs) + 1) // 2)]
    out = []
    for i, j in sorted(closest):
        a, b = terms[i], terms[j]
        first = (Part(a.chunk, a.parts[0].quotes[:1]),)
        second = (Part(b.chunk, b.parts[0].quotes[:1]),)
        out.append(Item(comparison_question(a.topic, b.topic, seed), first + second, "comparison"))
    return out


def _resources(chunk: Chunk) -> list[tuple[Resource, Quote, Quote | None]]:
    """Entries of a bold-named list ("- **Name.** What it is. Good for: ..."), with their name quote and
    "Good for" quote."""
    names = [" ".join(m.group(1).split()) for m in _BOLD_ENTRY.finditer(chunk.text)]
    if not names:
        return []
    quotes = quotes_of(chunk)
    starts = []
    for name in names:
        at = next((i for i, q in enumerate(quotes) if q.text.startswith(name[:24])), None)
        if at is not None:
            starts.append(at)
    out = []
    for k, at in enumerate(starts):
        entry = quotes[at : starts[k + 1] if k + 1 < len(starts) else len(quotes)]
        good = next((q for q in entry[1:] if q.text.startswith("Good for:")), None)
        # What it is: the sentence right after the name, unless the name's sentence already says it.
        described = entry[1] if len(entry) > 1 and not entry[1].text.startswith("Good for:") \
            and len(entry[0].text.split()) <= 16 else None
        kind = resource_kind(chunk.title, chunk.heading, " ".join(q.text for q in entry[:2]))
        resource = Resource(kind, entry[0].text, described.text if described else None,
                            good.text.removeprefix("Good for:").strip() if good else None)
        out.append((resource, entry[0], good or described))
    return out


def recommendation_items(chunks: Sequence[Chunk], seed: int) -> list[Item]:
    """"Which course / book / paper does it recommend for ...?" from resource lists; a question that fits
    two entries is ambiguous and dropped."""
    made: dict[str, list[Item]] = {}
    for chunk in chunks:
        for resource, name, support in _resources(chunk):
            quotes = (name,) if support is None else (name, support)
            for question in recommendation_questions(resource, seed):
                made.setdefault(normalize(question), []).append(Item(question, (Part(chunk, quotes),), "recommendation"))
    return [group[0] for group in made.values() if len(group) == 1]


def corpus_vocabulary(chunks: Sequence[Chunk]) -> set[str]:
    return {w for c in chunks for w in _WORD.findall(c.text.lower())}


def all_candidates(chunks: Sequence[Chunk], embedder: Any, seed: int, max_sentences: int,
                   keep: Callable[[Item], bool]) -> list[Item]:
    """Every kind of candidate; `keep` drops duplicates and excluded questions as they are made."""
    base = [it for c in chunks for it in base_items(c, max_sentences) if keep(it)]
    vocabulary = corpus_vocabulary(chunks)
    variants = [it for it in variant_items([b for b in base if _plain(b)], seed, vocabulary, 5) if keep(it)]
    multi = [it for it in multi_part_items(base, seed) if keep(it)]
    compare = [it for it in comparison_items(base, embedder, seed) if keep(it)]
    recommend = [it for it in recommendation_items(chunks, seed) if keep(it)]
    return base + variants + multi + compare + recommend
