"""Record one turn while the engine answers it; `chatkit ask`, the TUI and the server all use this.

The question is stored before anything else, the passages when retrieval is done, the answer when it
is complete. If the answer does not complete (a cancel, Ctrl-C, SIGTERM turned into KeyboardInterrupt,
a crash, a consumer that stops iterating) the text already streamed is kept, marked incomplete. While it
streams, the text is saved every few tokens, so even a SIGKILL loses only the last few."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from chatkit.conversations import ConversationStore, passages_from_hits
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.types import Answer, Event, Turn

# How often the streamed text is saved before the answer completes: a SIGKILL, which no handler sees,
# loses at most this many tokens or this much time of it. Each save is one small SQLite transaction.
SAVE_EVERY_TOKENS = 8
SAVE_EVERY_SECONDS = 0.25


class TurnRecording:
    """One turn of a stored conversation. Use as a context manager around `stream()`:

        recording = TurnRecording(engine, store, question, options, source="cli")
        with recording:
            for event in recording.stream(history):
                ...

    `lock` guards the store when other threads share its connection (the server's feedback route)."""

    def __init__(self, engine: ChatEngine, store: ConversationStore, question: str, options: ChatOptions | None = None,
                 *, source: str = "cli", conversation_id: int | None = None,
                 lock: threading.Lock | None = None) -> None:
        self.engine = engine
        self.store = store
        self.asked = question  # as typed: the engine cleans it again and warns when it trims it
        self.question, _ = engine.clean_question(question)
        self.options = options or ChatOptions()
        self._lock: contextlib.AbstractContextManager[object] = lock or contextlib.nullcontext()
        # The question is stored first: a model that fails to load, or a Ctrl-C while it loads, keeps it.
        with self._lock:
            self.conversation_id = conversation_id or store.new_conversation(self.question)
            self.turn_id = store.start_turn(self.conversation_id, self.question, source=source)
            self.idx = next(t.idx for t in store.turns(self.conversation_id) if t.id == self.turn_id)
        self.pieces: list[str] = []
        self.answer: Answer | None = None
        self.closed = False
        self._saved_pieces = 0
        self._saved_at = time.monotonic()
        try:
            if self.options.adapter is not None:
                engine.use_adapter(self.options.adapter)
            if engine.needs_generator(self.options):
                engine.generator  # noqa: B018 - load it now so the turn names the model that answers it
            with self._lock:
                store.set_model(self.turn_id, engine.model_id, engine.adapter_name)
        except BaseException:
            self.close()
            raise

    @property
    def partial(self) -> str:
        """The text streamed so far."""
        return "".join(self.pieces).strip()

    def stream(self, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """The engine's events, each recorded before it is passed on."""
        try:
            for event in self.engine.chat(self.asked, history, self.options):
                if event.kind == "retrieval":
                    with self._lock:
                        self.store.set_passages(self.turn_id, event.hits)
                elif event.kind == "token" and not event.data.get("fallback"):
                    self.pieces.append(event.text)
                    self._save_partial_now_and_then()
                elif event.kind == "answer" and event.answer is not None:
                    self._finish(event.answer)
                yield event
        finally:
            self.close()

    def _save_partial_now_and_then(self) -> None:
        """Save the text so far (still incomplete) every SAVE_EVERY_TOKENS tokens or SAVE_EVERY_SECONDS."""
        unsaved = len(self.pieces) - self._saved_pieces
        if unsaved < SAVE_EVERY_TOKENS and time.monotonic() - self._saved_at < SAVE_EVERY_SECONDS:
            return
        with self._lock:
            self.store.save_partial(self.turn_id, self.partial)
        self._saved_pieces, self._saved_at = len(self.pieces), time.monotonic()

    def _finish(self, answer: Answer) -> None:
        with self._lock:
            self.store.finish_turn(self.turn_id, answer.text, answer.abstained, answer.timings, answer.complete,
                                   passages=passages_from_hits(answer.hits))
        self.answer = answer
        self.closed = True

    def close(self) -> None:
        """Keep what was said, marked incomplete, unless the answer was stored; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            self.store.finish_turn(self.turn_id, self.partial, complete=False)

    def __enter__(self) -> TurnRecording:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
