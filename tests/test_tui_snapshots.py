"""Snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot; update with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs before committing)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatkit.conversations import ConversationStore
from chatkit.types import Chunk, Hit
from tests.test_tui_fixtures import make_app

pytest_plugins = ["tests.test_tui_fixtures"]  # the shared fixtures: chat_paths, tiny_engine

SIZES = [(80, 24), (120, 40)]
FIXED_TIME = 1_750_000_000.0


def _hit(n: int, title: str, heading: str, text: str) -> Hit:
    chunk = Chunk(f"docs/{title.lower()}", 0, text, title, (heading,) if heading else (), 0, len(text),
                  source=f"docs/{title.lower()}.md", chunk_id=n)
    return Hit(chunk, 0.9 - n / 10, n, 0.6 - n / 10)


def seed_store(paths: Any) -> None:
    """Two conversations with fixed text and times, so every pixel of the snapshot is stable."""
    store = ConversationStore(paths.conversations_db)
    lora = _hit(1, "LoRA", "How it works", "LoRA freezes the pre-trained weights and learns two small low-rank matrices "
                "per layer. It is cheaper than full fine-tuning because far fewer parameters are trained.")
    faiss = _hit(2, "FAISS", "", "FAISS stores dense vectors and finds nearest neighbours quickly.")
    old = store.new_conversation("How does FAISS search?")
    t = store.start_turn(old, "How does FAISS search?", [faiss], model="tiny-llama", adapter="base")
    store.finish_turn(t, "It finds nearest neighbours among dense vectors [1].", timings={"tokens_per_s": 20.0})
    conv = store.new_conversation()
    t = store.start_turn(conv, "What is LoRA and why is it cheaper?", [lora, faiss], model="tiny-llama", adapter="base")
    store.finish_turn(t, "LoRA freezes the base weights and trains two **small low-rank matrices** [1], so far "
                      "fewer parameters are trained than in full fine-tuning [1].",
                      timings={"tokens_per_s": 24.5, "retrieval_s": 0.042})
    store.rate(conv, 0, 1, "clear")
    t = store.start_turn(conv, "What is the capital of Australia?", [faiss], model="tiny-llama", adapter="base")
    store.finish_turn(t, "The documents don't cover this.", abstained=True,
                      timings={"tokens_per_s": 0.0, "retrieval_s": 0.031})
    store.db.execute("UPDATE conversations SET created = ?, updated = ? + id", (FIXED_TIME, FIXED_TIME))
    store.close()


@pytest.fixture
def seeded(chat_paths: Any, tiny_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    seed_store(chat_paths)
    return lambda: make_app(chat_paths, tiny_engine, conversation=2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_screen(snap_compare: Any, seeded: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sources_pane(snap_compare: Any, seeded: Any, size: tuple[int, int]) -> None:
    async def open_first_source(pilot: Any) -> None:
        pilot.app.query("AnswerView").first().focus()
        await pilot.press("1")
        await pilot.pause()

    assert snap_compare(seeded(), terminal_size=size, run_before=open_first_source)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare: Any, seeded: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded(), terminal_size=size, press=["f1"])


def test_new_conversation_light_theme(snap_compare: Any, seeded: Any) -> None:
    assert snap_compare(seeded(), terminal_size=(80, 24), press=["ctrl+n", "ctrl+t"])
