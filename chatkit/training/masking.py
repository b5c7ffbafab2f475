"""Assistant-only labels for any chat template, without `{% generation %}` markers.

The render-prefix method: for each assistant message i, the template renders messages[:i] with the
generation prompt (what the model is given) and messages[:i+1] (what it should continue to). The
characters between the two are the assistant's turn, end-of-turn token included. Tokens whose first
character lies in such a span are trained; everything else (system, user, passages, role headers)
gets -100. A template that renders earlier turns differently once later turns exist is refused,
because no honest mask exists for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatkit.errors import DataError

IGNORE = -100
Message = dict[str, str]


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    text: str
    spans: tuple[tuple[int, int], ...]  # character spans of the trained assistant turns
    offsets: tuple[tuple[int, int], ...]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)

    def __len__(self) -> int:
        return len(self.input_ids)


def render(tokenizer: Any, messages: Sequence[Message], generation_prompt: bool) -> str:
    try:
        return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt))
    except Exception as exc:  # jinja's raise_exception and template bugs surface as many types
        raise DataError(f"the chat template refused this conversation: {str(exc).splitlines()[0][:160]}",
                        "check the turn order the model's template expects") from None


def assistant_spans(tokenizer: Any, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    text = render(tokenizer, messages, generation_prompt=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not upto.startswith(prompt) or not text.startswith(upto):
            raise DataError("the chat template renders earlier turns differently once later turns are added, "
                            "so assistant turns cannot be located",
                            "split multi-turn rows into one row per answer, or use a model with a prefix-stable template")
        # Whitespace after the end-of-turn token is layout the model never generates.
        turn = text[len(prompt):len(upto)].rstrip()
        if m["content"].strip() not in turn:
            raise DataError("the chat template changes the assistant's words when rendering them",
                            "use a template that renders message content verbatim")
        spans.append((len(prompt), len(prompt) + len(turn)))
    return text, spans


def encode(tokenizer: Any, messages: Sequence[Message]) -> Encoded:
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    labels = [tid if any(s <= start < e for s, e in spans) else IGNORE for tid, (start, _end) in zip(ids, offsets, strict=True)]
    return Encoded(ids, labels, text, tuple(spans), tuple((int(a), int(b)) for a, b in offsets))


def end_of_turn(tokenizer: Any) -> str:
    """What the template puts after an assistant's words, e.g. '<|im_end|>' ('' means the model won't learn to stop)."""
    probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "PROBE"}]
    text, spans = assistant_spans(tokenizer, probe)
    turn = text[spans[0][0]:spans[0][1]]
    return turn[turn.index("PROBE") + len("PROBE"):].strip()
