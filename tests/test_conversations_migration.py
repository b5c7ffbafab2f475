"""conversations.sqlite carries PRAGMA user_version: a file written before versioning is upgraded in place with
every conversation, turn, rating and comment kept; a file from a newer chatkit is refused and left unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from chatkit.conversations import SCHEMA_VERSION, ConversationStore
from chatkit.errors import InputError
from tests.conftest import run_cli

# The schema as chatkit wrote it before versioning (user_version 0), copied verbatim: the fixture must not
# follow later edits of chatkit/conversations.py.
UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    passages TEXT NOT NULL DEFAULT '[]',
    model TEXT NOT NULL DEFAULT '',
    adapter TEXT NOT NULL DEFAULT '',
    timings TEXT NOT NULL DEFAULT '{}',
    abstained INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'cli',
    created REAL NOT NULL,
    UNIQUE (conversation_id, idx)
);
CREATE TABLE IF NOT EXISTS feedback (
    turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_time ON turns(created);
"""

PASSAGE = {"chunk_id": 7, "doc_id": "curriculum/26-lora-and-qlora", "title": "LoRA", "heading": "LoRA > Why",
           "source": "curriculum/26-lora-and-qlora.md", "text": "LoRA freezes the base weights.", "score": 0.8,
           "dense_score": 0.7, "collection": "curriculum"}


def write_unversioned_store(path: Path) -> None:
    """A store as the unversioned code left it: two conversations, a finished, an interrupted and a rated turn."""
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(UNVERSIONED_SCHEMA)
    db.executemany("INSERT INTO conversations(id, title, created, updated) VALUES (?, ?, ?, ?)",
                   [(1, "What is LoRA?", 100.0, 130.0), (2, "Ünïcode ✓ title", 200.0, 210.0)])
    db.executemany(
        "INSERT INTO turns(id, conversation_id, idx, question, answer, passages, model, adapter, timings, abstained,"
        " complete, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(1, 1, 0, "What is LoRA?", "LoRA freezes the base weights [1].", json.dumps([PASSAGE]), "SmolLM2", "tutor",
          json.dumps({"first_token_s": 0.4, "total_s": 2.5}), 0, 1, "cli", 110.0),
         (2, 1, 1, "And QLoRA?", "QLoRA quantizes", "[]", "SmolLM2", "", "{}", 0, 0, "tui", 120.0),
         (3, 2, 0, "Share price?", "The documents don't cover this.", "[]", "SmolLM2", "", "{}", 1, 1, "server", 205.0)])
    db.executemany("INSERT INTO feedback(turn_id, rating, comment, created) VALUES (?, ?, ?, ?)",
                   [(1, 1, "clear and cited", 111.0), (3, -1, "should have said more, ✗", 206.0)])
    db.commit()
    db.close()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(str(path))
    try:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("conversations", "turns", "feedback")}
    finally:
        db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(str(path))
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_unversioned_store_is_upgraded_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite"
    write_unversioned_store(path)
    before = dump(path)
    assert user_version(path) == 0

    store = ConversationStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    turns = store.turns(1) + store.turns(2)
    assert [(t.question, t.answer, t.complete, t.source, t.rating, t.comment) for t in turns] == [
        ("What is LoRA?", "LoRA freezes the base weights [1].", True, "cli", 1, "clear and cited"),
        ("And QLoRA?", "QLoRA quantizes", False, "tui", None, ""),
        ("Share price?", "The documents don't cover this.", True, "server", -1, "should have said more, ✗"),
    ]
    assert turns[0].passages == (PASSAGE,) and turns[0].timings == {"first_token_s": 0.4, "total_s": 2.5}
    assert [c.title for c in store.list_conversations()] == ["Ünïcode ✓ title", "What is LoRA?"]
    assert len(store.export_rows(rated="good")) == 1
    store.close()

    assert dump(path) == before, "the upgrade changed stored rows"
    assert user_version(path) == SCHEMA_VERSION >= 1


def test_upgraded_store_keeps_working_and_reopens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite"
    write_unversioned_store(path)
    store = ConversationStore(path)
    turn_id = store.start_turn(1, "Why is it cheaper?", model="SmolLM2")
    store.finish_turn(turn_id, "Fewer trainable parameters [1].")
    store.rate(1, 2, 1, "good")
    store.close()
    after_use = dump(path)

    reopened = ConversationStore(path)
    assert reopened.schema_version() == SCHEMA_VERSION
    assert [t.rating for t in reopened.turns(1)] == [1, None, 1]
    reopened.close()
    assert dump(path) == after_use


def test_new_store_starts_at_the_current_version(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "new.sqlite")
    assert store.schema_version() == SCHEMA_VERSION >= 1
    conversation = store.new_conversation()
    store.finish_turn(store.start_turn(conversation, "What is BM25?"), "A ranking function.")
    store.rate(conversation, 0, -1, "too short")
    assert store.turns(conversation)[0].comment == "too short"
    store.close()


def write_newer_store(path: Path) -> bytes:
    write_unversioned_store(path)
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    return path.read_bytes()


def test_store_from_a_newer_chatkit_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite"
    written = write_newer_store(path)

    with pytest.raises(InputError, match=f"schema version {SCHEMA_VERSION + 1}") as refused:
        ConversationStore(path)
    assert "newer chatkit" in refused.value.hint
    assert path.read_bytes() == written
    assert not (tmp_path / "conversations.sqlite-wal").exists()


def test_cli_reports_a_newer_store_in_one_line_with_a_hint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    written = write_newer_store(home / "conversations.sqlite")

    result = run_cli("--home", str(home), "conversations", "ls")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and f"schema version {SCHEMA_VERSION + 1}" in lines[0], result.stderr
    assert "(hint: " in lines[0], result.stderr
    assert (home / "conversations.sqlite").read_bytes() == written
