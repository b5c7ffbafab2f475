"""`chatkit data synth`: grounded training conversations from a collection, without a large model.

Each conversation looks exactly like what the answer engine sends the model: the system prompt, numbered
passages (the supporting chunks among retrieved distractors, each shown as its best sentences, as the engine
shows them) and a question; the answer quotes the supporting sentences with [n] citations, part by part.
Questions (chatkit/training/synth_items.py) come from headings, definition sentences, casual and misspelt
rewordings, pairs of questions about one document, comparisons of nearby terms and resource lists. Some
questions are paired with passages from other documents and answered with the abstention text; some become
two-turn conversations with a follow-up from the same document. Questions are de-duplicated (and those of
any --exclude file dropped), and whole documents go to either train or validation, never both.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chatkit.corpus.sentences import split_sentences
from chatkit.errors import DataError
from chatkit.extractive import evidence_passages
from chatkit.inputs import read_jsonl
from chatkit.prompting import ABSTAIN_TEXT, SYSTEM_PROMPT, Passage, user_message
from chatkit.training.synth_items import Item, all_candidates, content_words
from chatkit.training.synth_questions import definition_question, heading_question, lower_first, normalize
from chatkit.types import Chunk, Hit

__all__ = ["RememberingEmbedder", "SynthOptions", "SynthResult", "answer_text", "definition_question", "exclusion_set", "heading_question",
           "normalize", "synthesize", "val_path", "write_rows"]

# Shares of the answered rows by kind; a kind whose candidates run out leaves its share to the others.
KIND_WEIGHTS = {"heading": 0.2, "definition": 0.12, "variant": 0.35, "multi-part": 0.15, "comparison": 0.08,
                "recommendation": 0.1}


class Searcher(Protocol):
    embedder: Any

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
    evidence_sentences: int = 3  # sentences shown per passage, as the engine shows them; 0 = whole passages


@dataclass
class SynthResult:
    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    duplicates: int = 0
    excluded: int = 0
    straddling: int = 0  # questions dropped because their documents fall on both sides of the split


def answer_text(sentences: Sequence[str], n: int) -> str:
    return " ".join(f"{s.rstrip()} [{n}]" if not s.rstrip().endswith(".") else f"{s.rstrip()[:-1]} [{n}]." for s in sentences)


class RememberingEmbedder:
    """The same sentences and questions come back in thousands of searches and prompts; each is embedded
    once, and `remember` embeds them all up front in large batches (one text at a time is many times slower)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.vectors: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        # Everything but encoding (key, dim) is the wrapped embedder's.
        return getattr(self.__dict__["embedder"], name)

    def remember(self, texts: Sequence[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.embedder.encode(missing), strict=True))

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        import numpy as np

        self.remember(texts)
        if not texts:
            return self.embedder.encode([])
        return np.stack([self.vectors[t] for t in texts])


class Synthesizer:
    def __init__(self, searcher: Searcher, options: SynthOptions) -> None:
        self.searcher = searcher
        # The CLI gives the searcher a remembering embedder, so searches share the vectors.
        self.embedder = searcher.embedder if isinstance(searcher.embedder, RememberingEmbedder) \
            else RememberingEmbedder(searcher.embedder)
        self.opt = options
        self.rng = random.Random(options.seed)

    def _shown(self, question: str, chunks: list[Chunk], keep: dict[tuple[str, int], list[str]] | None = None) -> list[Passage]:
        return evidence_passages(question, chunks, self.embedder, self.opt.evidence_sentences, keep=keep)

    def _grounded(self, item: Item, question: str) -> tuple[list[Passage], str]:
        """Passages (supporting chunks among distractors retrieved for the question) and the answer."""
        supporting = list({p.chunk.key: p.chunk for p in item.parts}.values())
        hits = self.searcher.search(question, k=self.opt.passages + 4)
        taken = {c.key for c in supporting}
        texts = {c.text.strip() for c in supporting}
        distractors = [h.chunk for h in hits if h.chunk.key not in taken and h.chunk.text.strip() not in texts]
        chunks = distractors[: max(0, self.opt.passages - len(supporting))]
        for chunk in supporting:
            chunks.insert(self.rng.randrange(len(chunks) + 1), chunk)
        number = {c.key: i for i, c in enumerate(chunks, start=1)}
        keep: dict[tuple[str, int], list[str]] = {}
        for part in item.parts:
            keep.setdefault(part.chunk.key, []).extend(q.sentence for q in part.quotes)
        answer = " ".join(answer_text([q.text for q in part.quotes], number[part.chunk.key]) for part in item.parts)
        return self._shown(question, chunks, keep), answer

    def _unrelated(self, item: Item, pool: Sequence[Item]) -> list[Passage] | None:
        """Passages retrieved for a question from another document, sharing few words with this one."""
        words = content_words(item.question)
        for other in self.rng.sample(list(pool), min(12, len(pool))):
            if set(other.docs) & set(item.docs):
                continue
            hits = self.searcher.search(other.question, k=self.opt.passages)
            chunks = [h.chunk for h in hits if h.chunk.doc_id not in item.docs]
            if len(chunks) < 2 or any(len(words & content_words(c.text)) > 1 for c in chunks):
                continue
            return self._shown(item.question, chunks)
        return None

    def _turn(self, item: Item, question: str | None = None) -> list[dict[str, str]]:
        asked = question or item.question
        passages, answer = self._grounded(item, asked)
        return [{"role": "user", "content": user_message(asked, passages)}, {"role": "assistant", "content": answer}]

    def conversations(self, items: list[Item], progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        pools: dict[str, list[Item]] = {}
        for it in items:
            pools.setdefault(it.kind, []).append(it)
        for kind in sorted(pools):
            self.rng.shuffle(pools[kind])
        single = [it for it in items if len(it.parts) == 1 and it.kind in ("heading", "definition")]
        followups: dict[str, list[Item]] = {}
        for it in pools.get("heading", []) + pools.get("definition", []):
            if it.question.startswith(("What ", "How ", "Why ", "When ", "Which ", "Where ")):
                followups.setdefault(it.chunk.doc_id, []).append(it)
        used: set[int] = set()
        to_refuse = list(single)  # each clean question is asked at most once with passages that lack its answer
        self.rng.shuffle(to_refuse)
        rows: list[dict[str, Any]] = []
        system = [{"role": "system", "content": SYSTEM_PROMPT}]

        def draw() -> Item | None:
            while True:
                live = [k for k in sorted(pools) if pools[k] and k in KIND_WEIGHTS]
                if not live:
                    return None
                kind = self.rng.choices(live, weights=[KIND_WEIGHTS[k] for k in live])[0]
                item = pools[kind].pop()
                if id(item) not in used:
                    used.add(id(item))
                    return item

        next_report = 500
        while len(rows) < self.opt.n:
            if progress and len(rows) >= next_report:
                progress(f"{len(rows)} conversations")
                next_report += 500
            # Unanswerable rows ask a clean question (a misspelt variant hides its topic's words from the
            # overlap check) with another document's passages; the same question is also asked with its own
            # passages elsewhere, which teaches that the passages, not the question, decide.
            if to_refuse and self.rng.random() < self.opt.unanswerable:
                asked = to_refuse.pop()
                passages = self._unrelated(asked, single)
                if passages is not None:
                    rows.append({"messages": system + [{"role": "user", "content": user_message(asked.question, passages)},
                                                       {"role": "assistant", "content": ABSTAIN_TEXT}],
                                 "doc_ids": [], "kind": "unanswerable", "source_docs": list(asked.docs)})
                    continue
            item = draw()
            if item is None:
                break
            roll = self.rng.random()
            row = {"doc_ids": list(item.docs), "kind": item.kind, "source_docs": list(item.docs)}
            turn = self._turn(item)
            if roll > 1 - self.opt.multi_turn and item.kind in ("heading", "definition", "variant"):
                partner = next((o for o in followups.get(item.chunk.doc_id, []) if id(o) not in used
                                and o.chunk.key != item.chunk.key), None)
                if partner is not None:
                    used.add(id(partner))
                    follow = self._turn(partner, "And " + lower_first(partner.question))
                    rows.append(row | {"messages": system + turn + follow, "kind": "multi-turn"})
                    continue
            rows.append(row | {"messages": system + turn})
        return rows


def candidate_items(chunks: Sequence[Chunk], embedder: Any, exclude: set[str], options: SynthOptions) -> tuple[list[Item], int, int]:
    """Unique questions over all chunks; (items, duplicates dropped, excluded dropped)."""
    seen: set[str] = set()
    counts = {"duplicates": 0, "excluded": 0}

    def keep(item: Item) -> bool:
        key = normalize(item.question)
        if key in exclude:
            counts["excluded"] += 1
            return False
        if key in seen:
            counts["duplicates"] += 1
            return False
        seen.add(key)
        return True

    items = all_candidates(chunks, embedder, options.seed, options.max_answer_sentences, keep)
    return items, counts["duplicates"], counts["excluded"]


def validation_documents(docs: Sequence[str], fraction: float, seed: int) -> set[str]:
    shuffled = sorted(set(docs))
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * fraction) if fraction > 0 and len(shuffled) >= 5 else 0
    return set(shuffled[:n_val])


def exclusion_set(files: Sequence[Path]) -> set[str]:
    """Normalized questions of QA or conversation files, so evaluation questions never leak into training."""
    out: set[str] = set()
    for path in files:
        for _, row in read_jsonl(path, "--exclude file", "pass a QA or conversation JSONL file"):
            if isinstance(row, dict) and isinstance(row.get("question"), str):
                out.add(normalize(row["question"]))
            for m in row.get("messages", []) if isinstance(row, dict) else []:
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                    out.add(normalize(m["content"].rsplit("Question:", 1)[-1]))
    return out


def synthesize(chunks: Sequence[Chunk], searcher: Searcher, options: SynthOptions, exclude: set[str] = frozenset(),  # type: ignore[assignment]
               progress: Callable[[str], None] | None = None) -> SynthResult:
    synthesizer = Synthesizer(searcher, options)
    items, dups, excluded = candidate_items(chunks, synthesizer.embedder, set(exclude), options)
    # Documents are split before rows are made, so a question about documents on both sides (a comparison
    # across two lessons) is never asked and every row made counts.
    val_docs = validation_documents([c.doc_id for c in chunks], options.val_fraction, options.seed)
    one_side = [it for it in items if len(val_docs & set(it.docs)) in (0, len(it.docs))]
    straddling, items = len(items) - len(one_side), one_side
    if not items:
        raise DataError("no question could be made from this collection",
                        "data synth needs chunks with headings or definition sentences of at least two sentences")
    if progress:
        progress(f"{len(items)} candidate questions from {len(chunks)} chunks ({dups} duplicates, {excluded} excluded); "
                 "embedding their questions and sentences")
    synthesizer.embedder.remember([s for c in chunks for s in split_sentences(c.text)]
                                  + [it.question for it in items]
                                  + ["And " + lower_first(it.question) for it in items if it.kind in ("heading", "definition")])
    rows = synthesizer.conversations(items, progress)
    for i, r in enumerate(rows, start=1):
        r["id"] = f"synth-{i:05d}"
    train = [r for r in rows if not val_docs & set(r["source_docs"])]
    val = [r for r in rows if val_docs & set(r["source_docs"])]
    kinds: dict[str, int] = {}
    for r in train + val:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return SynthResult(train, val, kinds, len(items), dups, excluded, straddling)


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
