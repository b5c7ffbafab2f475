""""What is X?" questions: the term, the sentence that defines it, and its passage moved first."""

from __future__ import annotations

import pytest

from chatkit.definitions import defines, definition_first, definition_term
from chatkit.types import Chunk, Hit


@pytest.mark.parametrize(("question", "term"), [
    ("What is LoRA?", "LoRA"),
    ("whats a tokenizer", "tokenizer"),
    ("what is rope (rotary position embedding)", "rope"),
    ("Explain the BLEU score", "BLEU score"),
    ("What is LoRA and why is it cheaper than full fine-tuning of the whole model?", None),
    ("How does BM25 work?", None),
    ("Why is QLoRA cheaper?", None),
])
def test_definition_term(question: str, term: str | None) -> None:
    assert definition_term(question) == term


@pytest.mark.parametrize(("text", "expected"), [
    ("LoRA (Low-Rank Adaptation) is the most widely used method.", True),
    ("Some context first.\n- **LoRA** is a method that trains small matrices.", True),
    ("A tokenizer, in short, is what splits text.", True),
    ("The LoRA paper reported big savings.", False),
    ("LoRA was introduced by Hu et al. in 2021.", False),
    ("QLoRA is LoRA on a 4-bit base model.", False),
])
def test_defines(text: str, expected: bool) -> None:
    term = "tokenizer" if "tokenizer" in text else "LoRA"
    assert defines(text, term) is expected


def _hit(rank: int, text: str) -> Hit:
    return Hit(Chunk("doc", rank, text, "T", (), 0, len(text), chunk_id=rank), score=1.0 / rank, rank=rank)


def test_the_defining_passage_moves_first_and_ranks_are_renumbered() -> None:
    hits = [_hit(1, "The LoRA paper cut memory three times."), _hit(2, "LoRA ranks of 8 to 64 are common."),
            _hit(3, "LoRA (Low-Rank Adaptation) is a parameter-efficient method.")]
    top = definition_first("What is LoRA?", hits, k=2)
    assert [h.chunk.chunk_id for h in top] == [3, 1]
    assert [h.rank for h in top] == [1, 2]
    assert [h.chunk.chunk_id for h in definition_first("Why is LoRA cheap?", hits, k=2)] == [1, 2]
