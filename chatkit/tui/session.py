"""One chat session without any UI: the open conversation, its history, and its turns (stored by
chatkit/recording.py, as `chatkit ask` and the server store theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from chatkit.conversations import ConversationStore, StoredTurn, hits_from_passages
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.recording import TurnRecording
from chatkit.types import Event, Hit, Turn


@dataclass
class TurnRecord:
    """What the UI keeps of one exchange; `idx` is the store's turn number (used for ratings)."""

    question: str
    answer: str = ""
    hits: tuple[Hit, ...] = ()
    cited: tuple[int, ...] = ()
    abstained: bool = False
    complete: bool = True
    idx: int = -1
    rating: int | None = None
    comment: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, t: StoredTurn) -> TurnRecord:
        from chatkit.prompting import parse_citations

        hits = hits_from_passages(t.passages)
        cited, _ = parse_citations(t.answer, len(hits))
        return cls(t.question, t.answer, hits, tuple(cited), t.abstained, t.complete, t.idx, t.rating,
                   t.comment, dict(t.timings))


class ChatSession:
    """Owns the conversation store and the current conversation; the engine is attached once loaded."""

    def __init__(self, store: ConversationStore, engine: ChatEngine | None = None) -> None:
        self.store = store
        self.engine = engine
        self.conversation_id: int | None = None
        self.turns: list[TurnRecord] = []

    # --- conversations ------------------------------------------------------------------------

    def open(self, conversation_id: int) -> list[TurnRecord]:
        self.store.get_conversation(conversation_id)
        self.conversation_id = conversation_id
        self.turns = [TurnRecord.from_stored(t) for t in self.store.turns(conversation_id)]
        return self.turns

    def new(self) -> None:
        """A new conversation is created lazily by its first question, so empty ones don't pile up."""
        self.conversation_id = None
        self.turns = []

    def history(self) -> list[Turn]:
        return [Turn(t.question, t.answer, t.hits) for t in self.turns if t.answer.strip() and t.complete]

    # --- asking -------------------------------------------------------------------------------

    def ask(self, record: TurnRecord, options: ChatOptions) -> Iterator[Event]:
        """Stream the engine's events for `record.question`, filling `record`; the turn is stored by
        chatkit/recording.py, as `chatkit ask` and the server store theirs."""
        assert self.engine is not None, "the engine is not loaded yet"
        history = self.history()
        recording = TurnRecording(self.engine, self.store, record.question, options, source="tui",
                                  conversation_id=self.conversation_id)
        record.question = recording.question
        self.conversation_id, record.idx = recording.conversation_id, recording.idx
        self.turns.append(record)
        with recording:
            try:
                for event in recording.stream(history):
                    if event.kind == "retrieval":
                        record.hits = event.hits
                    elif event.kind == "answer" and event.answer is not None:
                        a = event.answer
                        record.answer, record.hits, record.abstained, record.complete = a.text, a.hits, a.abstained, a.complete
                        record.cited, record.timings = tuple(c.n for c in a.citations), dict(a.timings)
                    yield event
            finally:
                if recording.answer is None:
                    record.answer, record.complete = recording.partial, False

    def rate(self, record: TurnRecord, rating: int, comment: str | None = None) -> None:
        assert self.conversation_id is not None
        keep = record.comment if comment is None else comment
        self.store.rate(self.conversation_id, record.idx, rating, keep)
        record.rating, record.comment = rating, keep
