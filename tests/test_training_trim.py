"""RAG-aware trimming: passages are trimmed to fit max_length, never questions or answers; rows that
still do not fit are reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit.prompting import Passage, PromptTurn, build_messages, parse_citations, parse_user_message
from chatkit.training.formats import Row
from chatkit.training.masking import IGNORE
from chatkit.training.prepare import prepare
from chatkit.training.trim import trim_row

LONG = " ".join(["LoRA freezes the pre-trained weights and learns two small low-rank matrices."] * 40)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def trained_text(tokenizer: Any, enc: Any) -> str:
    return str(tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE]))


def test_long_passages_are_trimmed_answer_kept(tokenizer: Any) -> None:
    passages = tuple(Passage(f"Doc {i}", "", LONG) for i in range(4))
    answer = "It learns two low-rank matrices [2]."
    messages = build_messages([PromptTurn("What is LoRA?", passages, answer)])
    full = trim_row(tokenizer, messages, 100_000)
    assert not full.trimmed and full.encoded is not None
    trimmed = trim_row(tokenizer, messages, 400)
    assert trimmed.trimmed and trimmed.encoded is not None and len(trimmed.encoded) <= 400
    assert trimmed.tokens == len(full.encoded)
    assert trained_text(tokenizer, trimmed.encoded) == trained_text(tokenizer, full.encoded)
    question, blocks = parse_user_message(trimmed.encoded.text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0])
    assert question == "What is LoRA?"
    # The cited passage [2] is still there under its number; uncited passages after it went first.
    assert len(blocks) >= 2 and blocks[1].startswith("[2] Doc 1")
    assert parse_citations(answer, len(blocks)) == ([2], 0)


def test_row_that_cannot_fit_is_reported_not_dropped_silently(tokenizer: Any) -> None:
    ok = Row(1, "openai", (("user", "What is LoRA?"), ("assistant", "Low-rank adapters.")))
    huge = Row(2, "openai", (("user", LONG), ("assistant", "Low-rank adapters.")))
    rag = Row(3, "rag", tuple((m["role"], m["content"]) for m in build_messages(
        [PromptTurn("What is LoRA?", (Passage("Doc", "", LONG),), "Low-rank [1].")])))
    prepared = prepare(tokenizer, [ok, huge, rag], 450)
    assert prepared.lines == [1, 3] and prepared.trimmed == [3]
    assert [line for line, _ in prepared.too_long] == [2] and prepared.too_long[0][1] > 450
    assert len(prepared.lengths) == 3
