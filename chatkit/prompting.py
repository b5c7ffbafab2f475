"""The prompt format shared by the answer engine, the training data and the gold conversations.

A user turn carries its own numbered passages, then the question:

    Passages:
    [1] Title > Heading
    passage text

    Question: ...

Training rows use exactly this format, so what the model learns is what the engine asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SYSTEM_PROMPT = (
    "You are chatkit, a tutor for people learning to use and fine-tune large language models. "
    "Answer the question using only the numbered passages. Cite the passages you use like [1]. "
    "If the passages do not contain the answer, say: The documents don't cover this."
)
ABSTAIN_TEXT = "The documents don't cover this."
_ABSTAIN_PATTERNS = re.compile(
    r"(documents|passages|sources)\s+(don't|do not|doesn't|does not)\s+(cover|contain|mention|say)|"
    r"\bnot (covered|mentioned) in the (documents|passages)|\bI (can't|cannot) find",
    re.IGNORECASE,
)
_CITATION = re.compile(r"\[(\d{1,2})\]")
_BLANK_BEFORE_NUMBER = re.compile(r"\n\s*\n(?=\[\d{1,2}\] )")


@dataclass(frozen=True)
class Passage:
    """What the prompt shows of a retrieved chunk."""

    title: str
    heading: str
    text: str

    def render(self, n: int) -> str:
        head = " > ".join(p for p in (self.title, self.heading) if p)
        # A blank line followed by "[n] " separates passages, so passage text may not contain one.
        text = _BLANK_BEFORE_NUMBER.sub("\n", self.text.strip())
        return f"[{n}] {head}\n{text}"


@dataclass(frozen=True)
class PromptTurn:
    question: str
    passages: tuple[Passage, ...] = ()
    answer: str | None = None


def user_message(question: str, passages: Sequence[Passage]) -> str:
    body = "\n\n".join(p.render(i) for i, p in enumerate(passages, start=1)) if passages else "(none)"
    return f"Passages:\n{body}\n\nQuestion: {question.strip()}"


def build_messages(turns: Sequence[PromptTurn], system: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """All turns; the last one usually has no answer yet."""
    messages = [{"role": "system", "content": system}]
    for turn in turns:
        messages.append({"role": "user", "content": user_message(turn.question, turn.passages)})
        if turn.answer is not None:
            messages.append({"role": "assistant", "content": turn.answer})
    return messages


def fit_to_budget(turns: list[PromptTurn], count: Callable[[list[dict[str, str]]], int], budget: int,
                  system: str = SYSTEM_PROMPT) -> tuple[list[PromptTurn], int]:
    """Trim to `budget` tokens: old turns' passages, then old turns, then the current passages from the
    lowest-ranked up, then the current passages' text. Never the question. Returns (turns, passages kept).
    """
    turns = list(turns)

    def fits() -> bool:
        return count(build_messages(turns, system)) <= budget

    for i in range(len(turns) - 1):
        if fits():
            break
        turns[i] = PromptTurn(turns[i].question, (), turns[i].answer)
    while len(turns) > 1 and not fits():
        turns.pop(0)
    last = turns[-1]
    passages = list(last.passages)
    while len(passages) > 1 and not fits():
        passages.pop()
        turns[-1] = PromptTurn(last.question, tuple(passages), last.answer)
    while passages and not fits():
        words = passages[-1].text.split()
        if len(words) <= 20:
            passages.pop()
        else:
            cut = Passage(passages[-1].title, passages[-1].heading, " ".join(words[: int(len(words) * 0.75)]) + " ...")
            passages[-1] = cut
        turns[-1] = PromptTurn(last.question, tuple(passages), last.answer)
    return turns, len(passages)


def parse_citations(answer: str, n_passages: int) -> tuple[list[int], int]:
    """Cited passage numbers in order of first use, and how many citations named no given passage."""
    valid: list[int] = []
    dropped = 0
    for match in _CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= n_passages:
            if n not in valid:
                valid.append(n)
        else:
            dropped += 1
    return valid, dropped


def strip_invalid_citations(answer: str, n_passages: int) -> str:
    return _CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= n_passages else "", answer)


def says_abstain(answer: str) -> bool:
    return bool(_ABSTAIN_PATTERNS.search(answer))


def parse_user_message(content: str) -> tuple[str, list[str]]:
    """Inverse of `user_message` for validation: (question, passage blocks by number)."""
    if not content.startswith("Passages:\n") or "\n\nQuestion: " not in content:
        return content, []
    body, question = content[len("Passages:\n"):].rsplit("\n\nQuestion: ", 1)
    if body.strip() == "(none)":
        return question, []
    # Passages are numbered 1..n in order and separated by a blank line, so only the next expected
    # number starts a block: a passage quoting "[2] ..." inside its own text stays one block.
    if not body.startswith("[1] "):
        return question, []
    starts, n = [0], 2
    while (pos := body.find(f"\n\n[{n}] ", starts[-1])) != -1:
        starts.append(pos + 2)
        n += 1
    blocks = [body[s:e].strip() for s, e in zip(starts, [*starts[1:], len(body)], strict=False)]
    return question, blocks


_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about|why|how so|then)\b|\b(it|its|this|that|these|those|they|them|their|there|he|she|one)\b",
    re.IGNORECASE,
)


_PART_BREAK = re.compile(r"\?\s+(?=\S)|,?\s+and\s+(?=(?:what|why|how|when|which|who|where|is|are|does|do|can|should)\b)",
                         re.IGNORECASE)


def question_parts(question: str) -> list[str]:
    """A multi-part question ("What is LoRA and why is it cheaper?") as its parts, each searched and
    answered on its own; a later part is searched with the first for its context ("it")."""
    parts = [p.strip(" ?,") for p in _PART_BREAK.split(question.strip())]
    parts = [p for p in parts if len(p.split()) >= 2]
    return parts if len(parts) > 1 else [question.strip()]


def standalone_query(question: str, previous_questions: Sequence[str]) -> str:
    """A retrieval query for a follow-up question. A 135M model rewrites questions badly, so a short or
    pronoun-led follow-up is searched together with the question it follows."""
    if not previous_questions:
        return question
    words = question.split()
    if len(words) <= 6 or _FOLLOW_UP.search(question):
        return f"{previous_questions[-1]} {question}"
    return question
