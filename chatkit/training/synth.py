"""`chatkit data synth`: grounded training conversations from a collection, without a large model.

Each conversation looks exactly like what the answer engine sends the model: the system prompt, numbered
passages (the supporting chunk among retrieved distractors) and a question; the answer quotes the
supporting chunk's sentences with [n] citations. Questions come from headings ("How X works" ->
"How does X work?") and definition sentences ("X is a ..." -> "What is X?"). Some questions are paired
with passages from other documents and answered with the abstention text; some become two-turn
conversations with a follow-up from the same document. Questions are de-duplicated (and those of any
--exclude file dropped), and whole documents go to either train or validation, never both.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chatkit.corpus.sentences import split_sentences
from chatkit.errors import DataError, InputError
from chatkit.prompting import ABSTAIN_TEXT, SYSTEM_PROMPT, Passage, user_message
from chatkit.types import Chunk, Hit

SKIP_HEADINGS = re.compile(r"^(exercises?|summary|further reading|references|see also|next steps?|key terms|"
                           r"quiz|check yourself|recap|contents|overview)$", re.IGNORECASE)
_QUESTION_HEAD = re.compile(r"^(why|how|when|where|what|which|who)\s+(.+?)\s+(is|are|was|were|works?|does|do|can|"
                            r"helps?|matters?|fails?|changes?)\b\s*(.*)$", re.IGNORECASE)
_DEFINITION = re.compile(r"^(an?\s+|the\s+)?([A-Za-z][\w\-./+ ]{1,48}?(?:\s*\([^)]{2,40}\))?)\s+"
                         r"(is|are|means|refers to|stands for)\s+(?:an?|the|how|what|when|where)\b", re.IGNORECASE)
_PRONOUN = re.compile(r"^(it|this|that|these|those|they|there|here|each|both|one|some|most|all|its|their|such|in|on|for|with|at|by|from|to|when|if|after|before|during|unlike|like|once|while|because)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of to and or in on for is are was were be by with as at it this that what how why when "
                  "which who does do can you me about i my your from into than then".split())
_VERB_FIX = {"works": "work", "helps": "help", "matters": "matter", "fails": "fail", "changes": "change"}


class Searcher(Protocol):
    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]: ...


@dataclass(frozen=True)
class SynthOptions:
    n: int = 300
    passages: int = 4
    unanswerable: float = 0.15
    multi_turn: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    max_answer_sentences: int = 2


@dataclass(frozen=True)
class Item:
    """One grounded question with its answer sentences and supporting chunk."""

    question: str
    sentences: tuple[str, ...]
    chunk: Chunk
    kind: str  # heading | definition


@dataclass
class SynthResult:
    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    duplicates: int = 0
    excluded: int = 0


def normalize(question: str) -> str:
    return " ".join(_WORD.findall(question.lower()))


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _lower_first(text: str) -> str:
    # Keep acronyms and names ("LoRA", "BM25", "FAISS") as written.
    first, _, rest = text.partition(" ")
    if len(first) > 1 and first[1:].lower() != first[1:]:
        return text
    return first[:1].lower() + first[1:] + (" " + rest if rest else "")


def heading_question(heading: str, title: str) -> str | None:
    h = " ".join(heading.replace("`", "").split()).rstrip(".:?")
    if not h or SKIP_HEADINGS.match(h) or len(h.split()) > 10:
        return None
    m = _QUESTION_HEAD.match(h)
    if m:
        wh, subject, verb, rest = m.group(1).capitalize(), m.group(2), m.group(3).lower(), m.group(4)
        if verb in ("is", "are", "was", "were", "can"):
            return f"{wh} {verb} {subject}{' ' + rest if rest else ''}?"
        aux = "do" if verb in ("do",) or (verb in _VERB_FIX.values()) else "does"
        return f"{wh} {aux} {subject} {_VERB_FIX.get(verb, verb)}{' ' + rest if rest else ''}?"
    if re.match(r"^(error|warning):", h, re.IGNORECASE):
        return f'What does "{h}" mean?'
    words = h.split()
    if words[0].lower() in ("why", "how", "what", "when", "which", "who", "where"):
        # "What the data dir contains" -> "What does the data dir contain?"
        if len(words) > 2 and re.fullmatch(r"[a-z]+[^s]s", words[-1]):
            return f"{words[0].capitalize()} does {' '.join(words[1:-1])} {words[-1][:-1]}?"
        return f"{words[0].capitalize()} {' '.join(words[1:])}?"
    topic = _lower_first(h)
    templates = (f"What should I know about {topic}?", f"Can you explain {topic}?",
                 f"What does the material say about {topic} in {title}?" if title and title.lower() != h.lower()
                 else f"Tell me about {topic}.", f"Explain {topic}, please.")
    return templates[int(hashlib.sha1(h.encode()).hexdigest(), 16) % len(templates)]


def definition_question(sentence: str) -> str | None:
    m = _DEFINITION.match(sentence)
    if not m:
        return None
    article, term, verb = (m.group(1) or "").lower(), m.group(2).strip(), m.group(3).lower()
    if _PRONOUN.match(term) or len(term.split()) > 6 or term.lower() in _STOP:
        return None
    return f"What {'are' if verb == 'are' else 'is'} {article}{term}?"


def _supporting(question: str, sentences: Sequence[str], limit: int) -> tuple[str, ...]:
    """The sentences that answer: the best-overlapping one and, when it helps, its neighbour."""
    if not sentences:
        return ()
    words = _content_words(question)
    scores = [len(words & _content_words(s)) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    picked = [best]
    if limit > 1 and best + 1 < len(sentences):
        picked.append(best + 1)
    return tuple(sentences[i] for i in picked)


def _answerable_sentence(s: str) -> bool:
    # Table rows, cut-off fragments and list introductions ("... as follows:") make poor answers.
    return bool(re.match(r"[A-Z0-9`\"(]", s)) and "|" not in s and not s.rstrip().endswith(":")


def items_from_chunk(chunk: Chunk, max_sentences: int) -> list[Item]:
    sentences = [s for s in split_sentences(chunk.text) if _answerable_sentence(s)]
    if len(sentences) < 2:
        return []
    out = []
    hq = heading_question(chunk.heading_path[-1] if chunk.heading_path else "", chunk.title)
    if hq:
        out.append(Item(hq, tuple(sentences[:max_sentences]), chunk, "heading"))
    for i, s in enumerate(sentences):
        dq = definition_question(s)
        if dq:
            following = sentences[i + 1 : i + max_sentences]
            out.append(Item(dq, (s, *following), chunk, "definition"))
            break  # one definition per chunk keeps the mix balanced
    return out


def _passage(chunk: Chunk) -> Passage:
    return Passage(chunk.title, chunk.heading, chunk.text)


def answer_text(sentences: Sequence[str], n: int) -> str:
    return " ".join(f"{s.rstrip()} [{n}]" if not s.rstrip().endswith(".") else f"{s.rstrip()[:-1]} [{n}]." for s in sentences)


class Synthesizer:
    def __init__(self, chunks: Sequence[Chunk], searcher: Searcher, options: SynthOptions) -> None:
        self.chunks = list(chunks)
        self.searcher = searcher
        self.opt = options
        self.rng = random.Random(options.seed)

    def _grounded_passages(self, item: Item) -> tuple[list[Passage], int, list[str]]:
        hits = self.searcher.search(item.question, k=self.opt.passages + 4)
        distractors = [h.chunk for h in hits if h.chunk.chunk_id != item.chunk.chunk_id
                       and h.chunk.text.strip() != item.chunk.text.strip()][: self.opt.passages - 1]
        chunks = list(distractors)
        position = self.rng.randrange(len(chunks) + 1)
        chunks.insert(position, item.chunk)
        return [_passage(c) for c in chunks], position + 1, sorted({c.doc_id for c in chunks})

    def _unrelated_passages(self, item: Item, pool: Sequence[Item]) -> tuple[list[Passage], list[str]] | None:
        """Passages retrieved for a question from another document, sharing few words with this one."""
        words = _content_words(item.question)
        for other in self.rng.sample(list(pool), min(12, len(pool))):
            if other.chunk.doc_id == item.chunk.doc_id:
                continue
            hits = self.searcher.search(other.question, k=self.opt.passages)
            chunks = [h.chunk for h in hits if h.chunk.doc_id != item.chunk.doc_id]
            if len(chunks) < 2 or any(len(words & _content_words(c.text)) > 1 for c in chunks):
                continue
            return [_passage(c) for c in chunks], sorted({c.doc_id for c in chunks})
        return None

    def _turn(self, item: Item, question: str | None = None) -> tuple[list[dict[str, str]], list[str]]:
        passages, n, docs = self._grounded_passages(item)
        return [{"role": "user", "content": user_message(question or item.question, passages)},
                {"role": "assistant", "content": answer_text(item.sentences, n)}], docs

    def conversations(self, items: list[Item]) -> list[dict[str, Any]]:
        by_doc: dict[str, list[Item]] = {}
        for it in items:
            by_doc.setdefault(it.chunk.doc_id, []).append(it)
        order = list(items)
        self.rng.shuffle(order)
        used: set[int] = set()
        rows: list[dict[str, Any]] = []
        for item in order:
            if len(rows) >= self.opt.n:
                break
            if id(item) in used:
                continue
            used.add(id(item))
            roll = self.rng.random()
            system = [{"role": "system", "content": SYSTEM_PROMPT}]
            if roll < self.opt.unanswerable:
                unrelated = self._unrelated_passages(item, order)
                if unrelated is not None:
                    passages, docs = unrelated
                    rows.append({"messages": system + [{"role": "user", "content": user_message(item.question, passages)},
                                                       {"role": "assistant", "content": ABSTAIN_TEXT}],
                                 "doc_ids": [], "kind": "unanswerable", "source_doc": item.chunk.doc_id})
                    continue
            turn, docs = self._turn(item)
            if roll > 1 - self.opt.multi_turn:
                partner = next((o for o in by_doc[item.chunk.doc_id] if id(o) not in used
                                and o.chunk.chunk_id != item.chunk.chunk_id), None)
                if partner is not None:
                    used.add(id(partner))
                    follow, docs2 = self._turn(partner, "And " + _lower_first(partner.question))
                    rows.append({"messages": system + turn + follow, "doc_ids": sorted({item.chunk.doc_id}),
                                 "kind": "multi-turn", "source_doc": item.chunk.doc_id})
                    continue
            rows.append({"messages": system + turn, "doc_ids": [item.chunk.doc_id], "kind": item.kind,
                         "source_doc": item.chunk.doc_id})
        return rows


def candidate_items(chunks: Sequence[Chunk], exclude: set[str], max_sentences: int) -> tuple[list[Item], int, int]:
    """Unique questions over all chunks; (items, duplicates dropped, excluded dropped)."""
    seen: set[str] = set()
    items, dups, excluded = [], 0, 0
    for chunk in chunks:
        for it in items_from_chunk(chunk, max_sentences):
            key = normalize(it.question)
            if key in exclude:
                excluded += 1
            elif key in seen:
                dups += 1
            else:
                seen.add(key)
                items.append(it)
    return items, dups, excluded


def split_by_document(rows: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs = sorted({r["source_doc"] for r in rows})
    random.Random(seed).shuffle(docs)
    n_val = round(len(docs) * fraction) if fraction > 0 and len(docs) >= 5 else 0
    val_docs = set(docs[:n_val])
    return [r for r in rows if r["source_doc"] not in val_docs], [r for r in rows if r["source_doc"] in val_docs]


def exclusion_set(files: Sequence[Path]) -> set[str]:
    """Normalized questions of QA or conversation files, so evaluation questions never leak into training."""
    out: set[str] = set()
    for path in files:
        if not path.is_file():
            raise InputError(f"--exclude file not found: {path}", "pass a QA or conversation JSONL file")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path} line {n}: not valid JSON", "fix or remove the line") from None
            if isinstance(row, dict) and isinstance(row.get("question"), str):
                out.add(normalize(row["question"]))
            for m in row.get("messages", []) if isinstance(row, dict) else []:
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                    out.add(normalize(m["content"].rsplit("Question:", 1)[-1]))
    return out


def synthesize(chunks: Sequence[Chunk], searcher: Searcher, options: SynthOptions, exclude: set[str] = frozenset(),  # type: ignore[assignment]
               progress: Callable[[str], None] | None = None) -> SynthResult:
    items, dups, excluded = candidate_items(chunks, set(exclude), options.max_answer_sentences)
    if not items:
        raise DataError("no question could be made from this collection",
                        "data synth needs chunks with headings or definition sentences of at least two sentences")
    if progress:
        progress(f"{len(items)} candidate questions from {len(chunks)} chunks ({dups} duplicates, {excluded} excluded)")
    rows = Synthesizer(chunks, searcher, options).conversations(items)
    for i, r in enumerate(rows, start=1):
        r["id"] = f"synth-{i:04d}"
    train, val = split_by_document(rows, options.val_fraction, options.seed)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return SynthResult(train, val, kinds, len(items), dups, excluded)


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Written to a temporary file first, so an interrupted run never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "messages": r["messages"], "doc_ids": r["doc_ids"], "kind": r["kind"]},
                               ensure_ascii=False) + "\n")
    tmp.replace(path)


def val_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".val.jsonl")
