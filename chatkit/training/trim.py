"""Trim a row to `max_length` tokens by cutting its passages, never the questions or the answers.

Order: passages an answer does not cite are dropped from the end of each passage list (so the numbers
the answers cite stay valid), oldest turn first; then the longest passage text is cut to 3/4 of its
words, uncited passages before cited ones, down to 20 words each. A row that still does not fit is
returned as too long, for the caller to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatkit.prompting import Passage, parse_citations, parse_user_message, user_message
from chatkit.training.formats import Message, is_rag_user
from chatkit.training.masking import Encoded, encode

MIN_WORDS = 20


@dataclass(frozen=True)
class Trimmed:
    encoded: Encoded | None  # None: too long even with every passage trimmed
    tokens: int  # before any trimming
    trimmed: bool


@dataclass
class _Turn:
    question: str
    passages: list[Passage]
    cited: set[int]


def _passage(block: str) -> Passage:
    head, _, text = block.partition("\n")
    return Passage(head.split("] ", 1)[1] if "] " in head else head, "", text)


def _parse(messages: list[Message]) -> dict[int, _Turn]:
    turns = {}
    for i, m in enumerate(messages):
        if m["role"] == "user" and is_rag_user(m["content"]):
            question, blocks = parse_user_message(m["content"])
            passages = [_passage(b) for b in blocks]
            answer = messages[i + 1]["content"] if i + 1 < len(messages) else ""
            cited, _ = parse_citations(answer, len(passages))
            turns[i] = _Turn(question, passages, set(cited))
    return turns


def _rebuild(messages: list[Message], turns: dict[int, _Turn]) -> list[Message]:
    out = list(messages)
    for i, t in turns.items():
        out[i] = {"role": "user", "content": user_message(t.question, t.passages)}
    return out


def _drop_uncited_tail(turns: dict[int, _Turn]) -> bool:
    for t in turns.values():
        if t.passages and len(t.passages) not in t.cited:
            t.passages.pop()
            return True
    return False


def _words(p: Passage) -> int:
    return len(p.text.removesuffix(" ...").split())


def _shorten_one(turns: dict[int, _Turn]) -> bool:
    candidates = [(n in t.cited, -_words(p), i, n) for i, t in turns.items()
                  for n, p in enumerate(t.passages, start=1) if _words(p) > MIN_WORDS]
    if not candidates:
        return False
    _, _, i, n = min(candidates)
    p = turns[i].passages[n - 1]
    words = p.text.removesuffix(" ...").split()
    turns[i].passages[n - 1] = Passage(p.title, p.heading, " ".join(words[: max(MIN_WORDS, int(len(words) * 0.75))]) + " ...")
    return True


def trim_row(tokenizer: Any, messages: list[Message], max_length: int) -> Trimmed:
    encoded = encode(tokenizer, messages)
    first = len(encoded)
    if first <= max_length:
        return Trimmed(encoded, first, False)
    turns = _parse(messages)
    while turns and (_drop_uncited_tail(turns) or _shorten_one(turns)):
        encoded = encode(tokenizer, _rebuild(messages, turns))
        if len(encoded) <= max_length:
            return Trimmed(encoded, first, True)
    return Trimmed(None, first, False)
