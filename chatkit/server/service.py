"""What the routes ask of the warm engine, with no HTTP in it: which models exist, turning an OpenAI
request into a question plus history, and answering it on the model thread while storing the turn
exactly as `chatkit ask` and `chatkit chat` do (question first, passages on retrieval, answer last;
a cancel or crash keeps what was said, marked incomplete)."""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatkit.config import GenerationConfig, Paths, Settings
from chatkit.conversations import ConversationStore, hits_from_passages, passages_from_hits
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import AdapterError, ChatkitError, CollectionError, InputError
from chatkit.server.metrics import ServerMetrics
from chatkit.server.schemas import ChatCompletionRequest, Source
from chatkit.types import Answer, Hit, Turn

log = logging.getLogger("chatkit.server")

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
        return str(getattr(self.engine.generator, "model_id", "") or "")

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
        """Check a request and split it into question and history; nothing here touches the model."""
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
        roles = {"developer": "system"}
        messages = [{"role": roles.get(m.role, m.role), "content": m.text()} for m in req.messages
                    if m.role in ("system", "developer", "user", "assistant")]
        return ChatJob(question, history, req.model, adapter, dataclasses.replace(gen, **changes), req.conversation_id,
                       req.rag, messages, req.k, req.mode, req.style)

    # --- on the model thread ------------------------------------------------------------------

    def run_chat(self, job: ChatJob, emit: Emit) -> None:
        """Answer `job`, emitting ('ready', (conversation_id, turn)), ('token', text) ..., then
        ('done', Finished); ('error', ApiError) if it fails before 'ready', ('failed', ApiError) after."""
        if job.cancel.is_set():  # the client left while the request waited in the queue
            emit("error", ApiError(499, "the client disconnected", "cancelled"))
            return
        turn_id = 0
        said: list[str] = []
        pieces: list[str] = []

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
            self.engine.use_adapter(job.adapter)
            with self._store_lock:
                conv = job.conversation_id or self.store.new_conversation(job.question)
                turn_id = self.store.start_turn(conv, job.question, model=self.model_id, adapter=job.adapter, source="server")
                idx = next(t.idx for t in self.store.turns(conv) if t.id == turn_id)
            if job.rag:
                finished = self._rag(job, history, conv, idx, turn_id, tracked, pieces)
            else:
                tracked("ready", (conv, idx))
                finished = self._plain(job, conv, idx, tracked, pieces)
            a = finished.answer
            with self._store_lock:
                self.store.finish_turn(turn_id, a.text, a.abstained, a.timings, a.complete, passages=passages_from_hits(a.hits))
            self._observe(job, finished)
            emit("done", finished)
        except BaseException as exc:
            if turn_id:
                with self._store_lock:
                    self.store.finish_turn(turn_id, "".join(pieces).strip(), complete=False)
            if isinstance(exc, InputError) and str(exc).startswith("no conversation"):
                exc = ApiError(404, str(exc), "conversation_not_found", "conversation_id")
            # Before 'ready' the client gets a plain error status; after it, the stream ends with the error.
            emit("failed" if "ready" in said else "error", api_error(exc))
            if not isinstance(exc, Exception):
                raise

    def _rag(self, job: ChatJob, history: list[Turn], conv: int, idx: int, turn_id: int, emit: Emit,
             pieces: list[str]) -> Finished:
        options = ChatOptions(k=job.k, mode=job.mode, cancel=job.cancel, style=job.style, generation=job.generation)
        answer: Answer | None = None
        error = ""
        for event in self.engine.chat(job.question, history, options):
            if event.kind == "retrieval":
                with self._store_lock:
                    self.store.set_passages(turn_id, event.hits)
                best = max((h.dense_score or 0.0 for h in event.hits), default=0.0)
                self.metrics.top_score.observe(best)
                emit("ready", (conv, idx))
            elif event.kind == "token":
                pieces.append(event.text)
                emit("token", event.text)
            elif event.kind == "error":
                error = event.text
            elif event.kind == "answer" and event.answer is not None:
                answer = event.answer
        assert answer is not None
        t = answer.timings
        completion = int(t.get("new_tokens", 0)) or self._count(answer.text)
        length = bool(t.get("new_tokens")) and int(t["new_tokens"]) >= job.generation.max_new_tokens
        return Finished(answer, conv, idx, int(t.get("prompt_tokens", 0)), completion, "length" if length else "stop", error)

    def _plain(self, job: ChatJob, conv: int, idx: int, emit: Emit, pieces: list[str]) -> Finished:
        """rag=false: the chat as the client sent it, straight to the model; no passages, no citations."""
        import time

        from chatkit.generation import GenParams
        from chatkit.generation.hf import StreamStats

        started = time.perf_counter()
        gen = self.engine.generator
        prompt_ids = gen.render(job.messages)
        room = min(job.generation.context_tokens, gen.max_context)
        if len(prompt_ids) + job.generation.max_new_tokens > room:
            raise InputError(f"the chat is {len(prompt_ids)} tokens; with {job.generation.max_new_tokens} for the answer "
                             f"it does not fit the {room}-token context", "send fewer or shorter messages, or a smaller max_tokens")
        stats = StreamStats()
        for piece in gen.stream(prompt_ids, GenParams.from_settings(job.generation), cancel=job.cancel, stats=stats):
            pieces.append(piece)
            emit("token", piece)
        complete = stats.stopped != "cancelled"
        timings = {"prefill_s": stats.prefill_s, "decode_s": stats.decode_s, "new_tokens": float(stats.new_tokens),
                   "prompt_tokens": float(stats.prompt_tokens), "tokens_per_s": stats.tokens_per_s,
                   "total_s": time.perf_counter() - started}
        answer = Answer("".join(pieces).strip(), (), (), abstained=False, timings=timings, complete=complete)
        return Finished(answer, conv, idx, stats.prompt_tokens, stats.new_tokens,
                        "length" if stats.stopped == "length" else "stop")

    def _count(self, text: str) -> int:
        count = getattr(self.engine.generator, "count_tokens", None)
        return int(count(text)) if callable(count) and text else 0

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

    def embed(self, texts: list[str], encoding: str) -> tuple[list[list[float] | str], int]:
        import numpy as np

        embedder = self.engine.searcher.embedder
        vecs = embedder.encode(texts)
        counter = getattr(embedder, "count_tokens_batch", None)
        tokens = int(sum(counter(texts))) if callable(counter) else 0
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
