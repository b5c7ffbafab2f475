"""What the routes ask of the warm engine, with no HTTP in it: which models exist, turning an OpenAI
request into a question plus history, and answering it through the engine on the model thread, the
turn stored by chatkit/recording.py as `chatkit ask` and `chatkit chat` store theirs."""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatkit.config import GenerationConfig, Paths, Settings
from chatkit.conversations import ConversationStore, hits_from_passages
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import AdapterError, ChatkitError, CollectionError, InputError
from chatkit.recording import TurnRecording
from chatkit.server.compat import unsupported
from chatkit.server.metrics import ServerMetrics
from chatkit.server.schemas import ChatCompletionRequest, Source
from chatkit.types import Answer, Hit, Turn

log = logging.getLogger("chatkit.server")

EMBED_GROUP = 8
CHATKIT_MODEL = "chatkit"  # the server's default: the adapter it started with (promoted, --adapter, or base)


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error format."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_
        self.headers = headers or {}


def api_error(exc: BaseException) -> ApiError:
    """An exception from the engine or store as the status a client should see."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, CollectionError):
        return ApiError(503, str(exc), "collection_unavailable", type_="server_error", headers={"Retry-After": "5"})
    if isinstance(exc, AdapterError):
        return ApiError(400, str(exc), "model_unavailable", "model")
    if isinstance(exc, ChatkitError):
        return ApiError(400, str(exc), "invalid_request")
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}", "internal_error", type_="server_error")


@dataclass
class ChatJob:
    """One chat request, ready for the model thread."""

    question: str
    history: list[Turn]
    model: str  # as the client named it
    adapter: str  # 'base' or an adapter name
    generation: GenerationConfig
    conversation_id: int | None = None
    rag: bool = True
    messages: list[dict[str, str]] = field(default_factory=list)  # the whole chat, for rag=false
    k: int | None = None
    mode: str | None = None
    style: str | None = None
    answer_tokens: int | None = None  # the client's max_tokens: extractive answers are cut to it too
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Finished:
    answer: Answer
    conversation_id: int
    turn: int
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    error: str = ""


Emit = Callable[[str, Any], None]


def source_list(hits: Sequence[Hit], cited: set[int] | None = None, with_text: bool = True) -> list[Source]:
    cited = cited or set()
    return [Source(n=n, doc_id=h.chunk.doc_id, title=h.chunk.title, heading=h.chunk.heading, source=h.chunk.source,
                   collection=h.collection, score=round(float(h.score), 6),
                   dense_score=None if h.dense_score is None else round(float(h.dense_score), 6),
                   cited=n in cited, text=h.chunk.text if with_text else "")
            for n, h in enumerate(hits, start=1)]


class ChatService:
    def __init__(self, engine: ChatEngine, store: ConversationStore, paths: Paths | None, metrics: ServerMetrics,
                 collections: Sequence[str] = ()) -> None:
        self.engine = engine
        self.settings: Settings = engine.settings
        self.store = store
        self.paths = paths
        self.metrics = metrics
        self.collections = list(collections)
        self.default_adapter = engine.adapter_name
        self._store_lock = threading.Lock()  # one connection, shared by the model thread and feedback

    # --- models -------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.engine.generator.model_id

    def adapters(self) -> list[str]:
        """Registered adapters that look usable (their folders pass the registry's checks)."""
        if self.paths is None:
            return []
        from chatkit.training.registry import list_adapters

        return [a.name for a in list_adapters(self.paths) if not a.problem]

    def model_names(self) -> list[str]:
        return [CHATKIT_MODEL, "base", *[a for a in self.adapters() if a not in (CHATKIT_MODEL, "base")]]

    def adapter_for(self, model: str) -> str:
        """The adapter a model name selects; an unknown name is a 404, as OpenAI answers it."""
        if model in ("", CHATKIT_MODEL):
            return self.default_adapter
        if model == "base":
            return "base"
        if model in self.adapters():
            return model
        raise ApiError(404, f"The model '{model}' does not exist; GET /v1/models lists them", "model_not_found", "model")

    # --- requests -----------------------------------------------------------------------------

    def prepare(self, req: ChatCompletionRequest) -> ChatJob:
        """Check a request and split it into question and history (the model is warm: `serve` loads it first)."""
        refused = unsupported(req)
        if refused is not None:
            raise ApiError(400, refused[1], "unsupported_parameter", refused[0])
        if not req.messages:
            raise ApiError(400, "'messages' is empty: send at least one user message", "empty_messages", "messages")
        chat = [m for m in req.messages if m.role in ("user", "assistant")]
        if not chat or chat[-1].role != "user":
            raise ApiError(400, "the last message must be the user's question (role 'user')", "invalid_messages", "messages")
        try:
            question, _ = self.engine.clean_question(chat[-1].text())
        except InputError as exc:
            raise ApiError(400, f"the last user message is empty: {exc.message}", "empty_question", "messages") from None
        history: list[Turn] = []
        for before, after in zip(chat[:-1], chat[1:-1], strict=False):
            if before.role == "user" and after.role == "assistant" and before.text().strip() and after.text().strip():
                history.append(Turn(before.text().strip(), after.text().strip()))
        adapter = self.adapter_for(req.model)
        gen = self.settings.generation
        limit = max(16, min(gen.context_tokens, self.engine.generator.max_context) // 2)
        changes: dict[str, Any] = {}
        wanted = req.max_completion_tokens or req.max_tokens
        if wanted is not None:
            changes["max_new_tokens"] = min(wanted, limit)
        for name in ("temperature", "top_p", "seed"):
            if getattr(req, name) is not None:
                changes[name] = getattr(req, name)
        if req.stop is not None:  # on top of the configured ones, which keep answers inside the prompt format
            changes["stop"] = [*gen.stop, *([req.stop] if isinstance(req.stop, str) else req.stop)]
        roles = {"developer": "system"}
        messages = [{"role": roles.get(m.role, m.role), "content": m.text()} for m in req.messages
                    if m.role in ("system", "developer", "user", "assistant")]
        return ChatJob(question, history, req.model, adapter, dataclasses.replace(gen, **changes), req.conversation_id,
                       req.rag, messages, req.k, req.mode, req.style,
                       answer_tokens=changes.get("max_new_tokens"))

    # --- on the model thread ------------------------------------------------------------------

    def run_chat(self, job: ChatJob, emit: Emit) -> None:
        """Answer `job`, emitting ('ready', (conversation_id, turn)), ('token', text) ..., then
        ('done', Finished); ('error', ApiError) if it fails before 'ready', ('failed', ApiError) after.
        The turn is stored by chatkit/recording.py, as `chatkit ask` and the TUI store theirs."""
        if job.cancel.is_set():  # the client left while the request waited in the queue
            emit("error", ApiError(499, "the client disconnected", "cancelled"))
            return
        said: list[str] = []

        def tracked(kind: str, payload: Any) -> None:
            said.append(kind)
            emit(kind, payload)

        try:
            history = job.history
            with self._store_lock:
                if job.conversation_id is not None:
                    self.store.get_conversation(job.conversation_id)  # 404 below if it is gone
                    if not history:
                        history = [Turn(t.question, t.answer, hits_from_passages(t.passages))
                                   for t in self.store.turns(job.conversation_id) if t.complete and t.answer.strip()]
            options = ChatOptions(k=job.k, mode=job.mode, adapter=job.adapter, cancel=job.cancel, style=job.style,
                                  generation=job.generation, retrieval=job.rag, messages=tuple(job.messages),
                                  answer_tokens=job.answer_tokens)
            recording = TurnRecording(self.engine, self.store, job.question, options, source="server",
                                      conversation_id=job.conversation_id, lock=self._store_lock)
            error = ""
            with recording:
                for event in recording.stream(history):
                    if event.kind == "retrieval":
                        if event.hits:
                            self.metrics.top_score.observe(max((h.dense_score or 0.0 for h in event.hits), default=0.0))
                        tracked("ready", (recording.conversation_id, recording.idx))
                    elif event.kind == "token":
                        tracked("token", event.text)
                    elif event.kind == "error":
                        error = event.text
            assert recording.answer is not None
            finished = self._finished(job, recording.answer, recording.conversation_id, recording.idx, error)
            self._observe(job, finished)
            emit("done", finished)
        except BaseException as exc:
            if isinstance(exc, InputError) and str(exc).startswith("no conversation"):
                exc = ApiError(404, str(exc), "conversation_not_found", "conversation_id")
            # Before 'ready' the client gets a plain error status; after it, the stream ends with the error.
            emit("failed" if "ready" in said else "error", api_error(exc))
            if not isinstance(exc, Exception):
                raise

    def _finished(self, job: ChatJob, answer: Answer, conv: int, idx: int, error: str) -> Finished:
        t = answer.timings
        completion = int(t.get("new_tokens", 0)) or self._count(answer.text)
        # A fallback answer replaced the generated text: only its own cut counts.
        length = bool(t.get("cut")) or (bool(t.get("stopped_at_length")) and not t.get("fallback"))
        return Finished(answer, conv, idx, int(t.get("prompt_tokens", 0)), completion, "length" if length else "stop", error)

    def _count(self, text: str) -> int:
        return self.engine.generator.count_tokens(text) if text else 0

    def _observe(self, job: ChatJob, f: Finished) -> None:
        m, a = self.metrics, f.answer
        model = job.adapter or "base"
        m.answers.labels(model, str(a.complete).lower()).inc()
        new = int(a.timings.get("new_tokens", 0) or 0)
        if new:
            m.tokens.labels(model).inc(new)
        if a.timings.get("tokens_per_s"):
            m.tokens_per_s.observe(float(a.timings["tokens_per_s"]))
        if a.abstained:
            m.abstentions.labels(model).inc()

    def search(self, query: str, k: int, mode: str | None) -> list[Source]:
        return source_list(self.engine.searcher.search(query, k=k, mode=mode))

    def embed(self, texts: list[str], encoding: str, max_tokens: int) -> tuple[list[list[float] | str], int]:
        """Vectors for `texts` (on the embeddings thread), refused before any model work when reading
        them would cost more than `max_tokens` (each text counts up to the embedder's truncation)."""
        import numpy as np

        embedder = self.engine.searcher.embedder
        counts = embedder.count_tokens_batch(texts)
        cost = sum(min(n, embedder.max_tokens) for n in counts)
        if cost > max_tokens:
            raise ApiError(400, f"'input' is {cost} tokens to embed (each text counts up to {embedder.max_tokens}, where the "
                                f"embedder truncates); at most {max_tokens} per request: send fewer or shorter texts",
                           "too_many_tokens", "input")
        # A few texts per turn of the embedder's lock: a chat's retrieval waits for one group, not the batch.
        vecs = embedder.encode(texts, group=EMBED_GROUP)
        tokens = int(sum(counts))
        if encoding == "base64":
            return [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii") for v in vecs], tokens
        return [[float(x) for x in v] for v in vecs], tokens

    @property
    def embedder_name(self) -> str:
        embedder = self.engine.searcher.embedder
        return str(getattr(embedder, "name", "") or getattr(embedder, "key", "embedder"))

    # --- feedback -----------------------------------------------------------------------------

    def rate(self, conversation_id: int, turn: int, rating: int, comment: str) -> None:
        try:
            with self._store_lock:
                self.store.rate(conversation_id, turn, rating, comment)
        except InputError as exc:
            raise ApiError(404, str(exc), "turn_not_found", "turn") from None
        self.metrics.feedback.labels("good" if rating == 1 else "bad").inc()
