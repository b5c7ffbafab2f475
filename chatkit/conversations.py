"""The conversation store: SQLite (WAL) in the data dir. Every turn keeps the passages it was given,
so an export is exactly the training format, whatever happens to the index later."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.errors import InputError
from chatkit.prompting import SYSTEM_PROMPT, Passage, PromptTurn, build_messages
from chatkit.types import Chunk, Hit

# Each step takes the database from version n-1 to n (step n is MIGRATIONS[n - 1]) in one transaction, so
# a store with ratings users cannot rebuild is upgraded in place, never recreated. Version 0 is a new file,
# or one written before versioning, whose tables are version 1's (hence IF NOT EXISTS in step 1).
# To change the schema, append a step; never edit a published one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS turns (
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
        )""",
        """CREATE TABLE IF NOT EXISTS feedback (
            turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
            rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
            comment TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS turns_by_time ON turns(created)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class StoredTurn:
    id: int
    conversation_id: int
    idx: int
    question: str
    answer: str
    passages: tuple[dict[str, Any], ...]
    model: str
    adapter: str
    timings: dict[str, float]
    abstained: bool
    complete: bool
    created: float
    rating: int | None = None
    comment: str = ""
    source: str = "cli"  # cli | tui | server: where the turn was asked

    def prompt_turn(self) -> PromptTurn:
        passages = tuple(Passage(p.get("title", ""), p.get("heading", ""), p.get("text", "")) for p in self.passages)
        return PromptTurn(self.question, passages, self.answer)


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    title: str
    created: float
    updated: float
    turns: int


def passages_from_hits(hits: tuple[Hit, ...] | list[Hit]) -> list[dict[str, Any]]:
    return [
        {"chunk_id": h.chunk.chunk_id, "doc_id": h.chunk.doc_id, "title": h.chunk.title, "heading": h.chunk.heading,
         "source": h.chunk.source, "text": h.chunk.text, "score": h.score, "dense_score": h.dense_score,
         "collection": h.collection}
        for h in hits
    ]


def hits_from_passages(passages: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> tuple[Hit, ...]:
    """Stored passages back into Hits, so a resumed conversation shows its sources and feeds the history."""
    hits = []
    for rank, p in enumerate(passages, start=1):
        heading = tuple(h for h in str(p.get("heading", "")).split(" > ") if h)
        text = str(p.get("text", ""))
        chunk = Chunk(str(p.get("doc_id", "")), 0, text, str(p.get("title", "")), heading, 0, len(text),
                      source=str(p.get("source", "")), chunk_id=int(p.get("chunk_id", -1) or -1))
        hits.append(Hit(chunk, float(p.get("score", 0.0) or 0.0), rank, p.get("dense_score"), None,
                        str(p.get("collection", ""))))
    return tuple(hits)


class ConversationStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self._refuse_newer()  # before WAL mode, which would rewrite the file's header
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION, one step per transaction."""
        for target in range(self.schema_version() + 1, SCHEMA_VERSION + 1):
            with self._tx() as db:
                # Another process may have migrated while this one waited for the write lock.
                if self.schema_version() >= target:
                    continue
                for statement in MIGRATIONS[target - 1]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    def _refuse_newer(self) -> None:
        """A file written by a newer chatkit is refused and left exactly as it is."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            self.db.close()
            raise InputError(
                f"{self.path} has conversation schema version {version}, this chatkit reads up to {SCHEMA_VERSION}",
                "open it with the newer chatkit that wrote it; the file was left unchanged",
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- conversations ------------------------------------------------------------------------

    def new_conversation(self, title: str = "") -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute("INSERT INTO conversations(title, created, updated) VALUES (?, ?, ?)", (title[:80] or "new conversation", now, now))
        return int(cur.lastrowid or 0)

    def list_conversations(self, search: str = "") -> list[ConversationInfo]:
        sql = ("SELECT c.id, c.title, c.created, c.updated, COUNT(t.id) AS n FROM conversations c "
               "LEFT JOIN turns t ON t.conversation_id = c.id ")
        args: tuple[Any, ...] = ()
        if search:
            sql += "WHERE c.title LIKE ? OR c.id IN (SELECT conversation_id FROM turns WHERE question LIKE ? OR answer LIKE ?) "
            like = f"%{search}%"
            args = (like, like, like)
        sql += "GROUP BY c.id ORDER BY c.updated DESC"
        return [ConversationInfo(r["id"], r["title"], r["created"], r["updated"], r["n"]) for r in self.db.execute(sql, args)]

    def get_conversation(self, conversation_id: int) -> ConversationInfo:
        for info in self.list_conversations():
            if info.id == conversation_id:
                return info
        raise InputError(f"no conversation {conversation_id}", "`chatkit conversations ls` lists them")

    def rename(self, conversation_id: int, title: str) -> None:
        self.get_conversation(conversation_id)
        with self._tx() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title[:80], conversation_id))

    def delete(self, conversation_id: int) -> None:
        self.get_conversation(conversation_id)
        with self._tx() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- turns --------------------------------------------------------------------------------

    def start_turn(self, conversation_id: int, question: str, hits: list[Hit] | tuple[Hit, ...] = (),
                   model: str = "", adapter: str = "", source: str = "cli") -> int:
        """Store the question before answering, so a crash mid-answer keeps it (marked incomplete)."""
        now = time.time()
        with self._tx() as db:
            idx = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id = ?", (conversation_id,)).fetchone()[0]
            cur = db.execute(
                "INSERT INTO turns(conversation_id, idx, question, passages, model, adapter, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, idx, question, json.dumps(passages_from_hits(hits)), model, adapter, source, now),
            )
            if idx == 0:
                db.execute("UPDATE conversations SET title = ? WHERE id = ? AND title = 'new conversation'", (question[:80], conversation_id))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        return int(cur.lastrowid or 0)

    def set_model(self, turn_id: int, model: str, adapter: str) -> None:
        """Name the model and adapter that answer a turn (known only once the model is loaded)."""
        with self._tx() as db:
            db.execute("UPDATE turns SET model = ?, adapter = ? WHERE id = ?", (model, adapter, turn_id))

    def set_passages(self, turn_id: int, hits: list[Hit] | tuple[Hit, ...]) -> None:
        with self._tx() as db:
            db.execute("UPDATE turns SET passages = ? WHERE id = ?", (json.dumps(passages_from_hits(hits)), turn_id))

    def save_partial(self, turn_id: int, answer: str) -> None:
        """The answer so far, while it streams: the turn stays incomplete until finish_turn."""
        with self._tx() as db:
            db.execute("UPDATE turns SET answer = ?, complete = 0 WHERE id = ?", (answer, turn_id))

    def finish_turn(self, turn_id: int, answer: str, abstained: bool = False, timings: dict[str, float] | None = None,
                    complete: bool = True, passages: list[dict[str, Any]] | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE turns SET answer = ?, abstained = ?, timings = ?, complete = ? WHERE id = ?",
                       (answer, int(abstained), json.dumps(timings or {}), int(complete), turn_id))
            if passages is not None:
                db.execute("UPDATE turns SET passages = ? WHERE id = ?", (json.dumps(passages), turn_id))

    def turns(self, conversation_id: int) -> list[StoredTurn]:
        rows = self.db.execute(
            "SELECT t.*, f.rating, f.comment FROM turns t LEFT JOIN feedback f ON f.turn_id = t.id "
            "WHERE t.conversation_id = ? ORDER BY t.idx", (conversation_id,))
        return [_turn(r) for r in rows]

    def all_turns(self, since: float = 0.0) -> list[StoredTurn]:
        rows = self.db.execute("SELECT t.*, f.rating, f.comment FROM turns t LEFT JOIN feedback f ON f.turn_id = t.id "
                               "WHERE t.created >= ? ORDER BY t.created", (since,))
        return [_turn(r) for r in rows]

    def rate(self, conversation_id: int, turn_idx: int, rating: int, comment: str = "") -> None:
        if rating not in (-1, 1):
            raise InputError(f"rating must be +1 or -1, got {rating}", "e.g. chatkit conversations rate 3 0 +1")
        row = self.db.execute("SELECT id FROM turns WHERE conversation_id = ? AND idx = ?", (conversation_id, turn_idx)).fetchone()
        if row is None:
            raise InputError(f"conversation {conversation_id} has no turn {turn_idx}", "`chatkit conversations show ID` lists its turns")
        with self._tx() as db:
            db.execute("INSERT INTO feedback(turn_id, rating, comment, created) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(turn_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment, created = excluded.created",
                       (row["id"], rating, comment, time.time()))

    # --- export -------------------------------------------------------------------------------

    def export_rows(self, rated: str = "all", fmt: str = "openai") -> list[dict[str, Any]]:
        """One training row per conversation: its complete turns up to the last one kept.

        rated='good' keeps conversations whose rated turns are all +1 (and at least one is),
        dropping unrated trailing turns, so only what a person approved is trained.
        """
        rows = []
        for info in sorted(self.list_conversations(), key=lambda c: c.id):
            turns = [t for t in self.turns(info.id) if t.complete and t.answer.strip()]
            if rated == "good":
                if any(t.rating == -1 for t in turns) or not any(t.rating == 1 for t in turns):
                    continue
                last_good = max(i for i, t in enumerate(turns) if t.rating == 1)
                turns = turns[: last_good + 1]
            if not turns:
                continue
            messages = build_messages([t.prompt_turn() for t in turns], SYSTEM_PROMPT)
            if fmt == "sharegpt":
                names = {"system": "system", "user": "human", "assistant": "gpt"}
                rows.append({"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in messages]})
            else:
                rows.append({"messages": messages})
        return rows


def _turn(r: sqlite3.Row) -> StoredTurn:
    return StoredTurn(
        id=r["id"], conversation_id=r["conversation_id"], idx=r["idx"], question=r["question"], answer=r["answer"],
        passages=tuple(json.loads(r["passages"])), model=r["model"], adapter=r["adapter"],
        timings=json.loads(r["timings"]), abstained=bool(r["abstained"]), complete=bool(r["complete"]),
        created=r["created"], rating=r["rating"], comment=r["comment"] or "", source=r["source"] or "cli",
    )
