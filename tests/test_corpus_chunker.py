"""The chunker, with the real packaged embedder's tokenizer: budgets, overlap, headings, offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatkit.config import Settings
from chatkit.corpus.chunker import Chunker
from chatkit.corpus.discover import discover
from chatkit.corpus.parse import parse_file
from chatkit.types import Chunk


@pytest.fixture(scope="module")
def embedder():
    from chatkit.config import apply_offline
    from chatkit.retrieval.service import load_embedder

    settings = Settings()
    apply_offline(settings)
    return load_embedder(settings)


@pytest.fixture(scope="module")
def tokens(embedder):
    from chatkit.indexing.pipeline import EmbedderTokens

    return EmbedderTokens(embedder)


SENTENCE = "Low-rank adapters freeze the base weights and learn two small matrices per layer. "


def chunks_of(path: Path, tokens, max_tokens: int = 64, overlap: int = 8) -> tuple[str, list[Chunk]]:
    (found,) = discover([path])
    (parsed,) = list(parse_file(found, "h"))
    return parsed.document.text, list(Chunker(tokens, max_tokens, overlap).chunks(parsed.document, parsed.blocks))


def test_chunks_fit_the_budget_including_title_and_headings(tmp_path: Path, tokens, embedder) -> None:
    path = tmp_path / "lora.md"
    path.write_text("# LoRA\n\n## How it works\n\n" + SENTENCE * 30 + "\n\n## Costs\n\n" + SENTENCE * 3)
    _, chunks = chunks_of(path, tokens, max_tokens=64)
    assert len(chunks) > 4
    for c in chunks:
        assert embedder.count_tokens(c.embed_text) <= 64
        assert c.title == "LoRA" and c.heading_path in (("How it works",), ("Costs",))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_never_cross_a_heading(tmp_path: Path, tokens) -> None:
    path = tmp_path / "a.md"
    path.write_text("# T\n\n## One\n\nalpha beta.\n\n## Two\n\ngamma delta.\n")
    _, chunks = chunks_of(path, tokens, max_tokens=256)
    assert [(c.heading_path, c.text) for c in chunks] == [(("One",), "alpha beta."), (("Two",), "gamma delta.")]
    assert chunks[1].embed_text == "T > Two\ngamma delta."


def test_neighbouring_chunks_overlap_and_offsets_point_into_the_text(tmp_path: Path, tokens) -> None:
    path = tmp_path / "long.md"
    body = " ".join(f"Sentence number {i} talks about topic {i * 7}." for i in range(120))
    path.write_text("# Long\n\n" + body + "\n")
    text, chunks = chunks_of(path, tokens, max_tokens=64, overlap=16)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.char_start < a.char_end, "consecutive chunks share an overlap"
        assert a.text[-20:] in text[a.char_start : a.char_end]
    for c in chunks:
        assert text[c.char_start : c.char_start + 15] == c.text[:15]
    covered = "".join(c.text for c in chunks)
    for i in range(120):
        assert f"number {i} " in covered


def test_a_sentence_longer_than_the_budget_is_cut_between_tokens(tmp_path: Path, tokens, embedder) -> None:
    path = tmp_path / "w.txt"
    path.write_text("one endless run-on clause without any full stop " * 60)
    _, chunks = chunks_of(path, tokens, max_tokens=32, overlap=4)
    assert len(chunks) > 3
    assert all(embedder.count_tokens(c.embed_text) <= 32 + 2 for c in chunks)


def test_pdf_chunks_carry_pages(tmp_path: Path, tokens) -> None:
    from tests.test_corpus_parsers import make_pdf

    path = make_pdf(tmp_path / "p.pdf", ["first page words", "second page words"])
    _, chunks = chunks_of(path, tokens, max_tokens=256)
    assert [c.page for c in chunks] == [1, 2]


def test_a_huge_word_is_cut_into_bounded_chunks(tmp_path: Path, tokens) -> None:
    from chatkit.corpus.chunker import CHARS_PER_TOKEN

    # WordPiece counts a word over 100 characters as one [UNK]: by tokens alone this is one chunk.
    word = "x" * 1_000_000
    path = tmp_path / "blob.txt"
    path.write_text(f"before {word} after.")
    text, chunks = chunks_of(path, tokens, max_tokens=64, overlap=8)
    assert len(chunks) > 100
    assert max(len(c.text) for c in chunks) <= 64 * CHARS_PER_TOKEN
    assert all(text[c.char_start:c.char_end].startswith(c.text[:50]) for c in chunks)
    assert chunks[0].text.startswith("before") and chunks[-1].text.endswith("after.")
