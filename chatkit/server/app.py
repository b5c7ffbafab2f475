"""The FastAPI app: routes, OpenAI-style errors, auth, body limit and metrics around them.

`create_app` takes a warm ChatEngine and a ConversationStore, so tests build it from tiny real parts;
`chatkit serve` (chatkit/server/run.py) builds it from the runtime's engine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatkit.config import Paths
from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine
from chatkit.server.compat import without_surrogates
from chatkit.server.limits import BodyLimit, ModelGate, QueueFull, error_body, key_matches
from chatkit.server.metrics import MetricsMiddleware, ServerMetrics
from chatkit.server.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResult,
    Health,
    Model,
    ModelList,
    SearchResult,
    Usage,
    error_json,
)
from chatkit.server.service import ApiError, ChatJob, ChatService, Finished, api_error, source_list

POLL_S = 0.2  # how often a waiting non-streamed request checks that its client is still there
PROTECTED = ("/v1/", "/metrics")
MAX_EMBED_INPUTS = 256
# What one /v1/embeddings request may cost: tokens the embedder reads, each text counting up to the
# embedder's own limit (it truncates there): 32 full-length texts, or 256 of a sentence or two; about
# 8 s on two busy CPU cores (256 texts of 700 words, unbounded, took 69 s).
MAX_EMBED_TOKENS = 8_192


class ClientGone(Exception):
    pass


class ChatRun:
    """The model thread's events for one request, handed to the event loop through a queue."""

    def __init__(self, job: ChatJob) -> None:
        self.job = job
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._get: asyncio.Future[tuple[str, Any]] | None = None

    def emit(self, kind: str, payload: Any) -> None:  # called on the model thread
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the loop closed (server stopping); nobody is listening
            self.job.cancel.set()

    async def next(self, request: Request | None) -> tuple[str, Any]:
        """The next event; with `request`, checks for a disconnect every POLL_S (and then cancels)."""
        if self._get is None:
            self._get = asyncio.ensure_future(self.queue.get())
        while True:
            done, _ = await asyncio.wait({self._get}, timeout=POLL_S)
            if done:
                item = self._get.result()
                self._get = None
                return item
            if request is not None and await request.is_disconnected():
                self.cancel()
                raise ClientGone

    def cancel(self) -> None:
        self.job.cancel.set()
        if self._get is not None:
            self._get.cancel()


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(error_json(err.message, err.type, err.code, err.param), status_code=err.status, headers=err.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None, "invalid_request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None, "invalid_json"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query")]
    where = ".".join(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid request: {where + ': ' if where else ''}{first.get('msg', 'invalid value')}{more}", where or None, "invalid_request"


def create_app(engine: ChatEngine, store: ConversationStore, paths: Paths | None = None, *, api_key: str | None = None,
               queue_size: int | None = None, max_body_bytes: int | None = None,
               collections: Sequence[str] = ()) -> FastAPI:
    settings = engine.settings
    key = settings.server.api_key if api_key is None else api_key
    metrics = ServerMetrics()
    gate = ModelGate(settings.server.queue_size if queue_size is None else queue_size)
    # Embeddings have their own thread and queue: a long batch never holds up an answer (the embedder
    # itself is shared, locked a few texts at a time, so retrieval waits at most one small group).
    embed_gate = ModelGate(settings.server.queue_size if queue_size is None else queue_size, name="chatkit-embed")
    service = ChatService(engine, store, paths, metrics, collections)
    runs: set[threading.Event] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for cancel in list(runs):  # stopping: let running answers end at their next token
            cancel.set()
        gate.close()
        embed_gate.close()

    app = FastAPI(title="chatkit", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OpenAI-compatible chat completions with retrieval and sources, plus embeddings, "
                              "search, feedback, health and Prometheus metrics.")
    app.state.service, app.state.gate, app.state.embed_gate, app.state.metrics = service, gate, embed_gate, metrics
    # Declared in the OpenAPI schema only when this server has a key (AuthMiddleware does the checking).
    guard = [Security(HTTPBearer(auto_error=False, description="the server's API key"))] if key else []
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 503)}

    # --- errors -------------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _validation_message(exc)
        return error_response(ApiError(400, message, code, param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request"
        message = f"no endpoint {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        err = ApiError(exc.status_code, message, kind, type_="invalid_request_error", headers=dict(exc.headers or {}))
        return error_response(err)

    def busy(exc: QueueFull) -> ApiError:
        metrics.rejected.inc()
        return ApiError(503, f"the model is busy: {gate.queue_size} requests are already waiting; retry after "
                             f"{exc.retry_after} s", "queue_full", type_="server_error",
                        headers={"Retry-After": str(exc.retry_after)})

    async def on_model(fn: Callable[..., Any], *args: Any, on: ModelGate = gate) -> Any:
        try:
            future = on.submit(fn, *args)
        except QueueFull as exc:
            raise busy(exc) from None
        metrics.queue.set(gate.admitted)
        try:
            return await asyncio.wrap_future(future)
        except ApiError:
            raise
        except Exception as exc:
            raise api_error(exc) from None
        finally:
            metrics.queue.set(gate.admitted)

    # --- open routes --------------------------------------------------------------------------

    @app.get("/health", response_model=Health, tags=["monitoring"])
    async def health() -> Health:
        """Liveness for load balancers: the model is loaded; no key needed (so no local paths in it)."""
        return Health(model=Path(service.model_id).name or service.model_id, adapter=service.default_adapter,
                      collections=service.collections, queue=gate.admitted, queue_size=gate.queue_size)

    @app.get("/metrics", tags=["monitoring"], dependencies=guard, responses=errors,
             response_class=Response)
    async def prometheus() -> Response:
        """Prometheus text format: requests, latency, tokens, speed, retrieval scores, abstentions, feedback."""
        metrics.queue.set(gate.admitted)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # --- /v1 ----------------------------------------------------------------------------------

    @app.get("/v1/models", response_model=ModelList, tags=["openai"], dependencies=guard, responses=errors)
    async def models() -> ModelList:
        """'chatkit' (the server's default adapter), 'base', and every usable registered adapter."""
        names = await run_in_threadpool(service.model_names)
        return ModelList(data=[Model(id=n) for n in names])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, tags=["openai"], dependencies=guard,
              responses=errors | {200: {"content": {"text/event-stream": {}},
                                        "description": "a chat.completion, or with stream=true server-sent chat.completion.chunk events"}})
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """Answer the last user message from the collections, citing passages as [n]; sources come in
        `sources` (on the final chunk when streaming). The turn is stored; `conversation_id` and `turn`
        in the response identify it for POST /v1/feedback and for continuing the conversation."""
        job = service.prepare(body)  # cheap checks, no model: inline
        run = ChatRun(job)
        try:
            gate.submit(service.run_chat, job, run.emit)
        except QueueFull as exc:
            raise busy(exc) from None
        runs.add(job.cancel)
        metrics.queue.set(gate.admitted)
        handed_over = False
        try:
            kind, payload = await run.next(request)
            if kind == "error":
                raise payload
            conv, idx = payload
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            if body.stream:
                handed_over = True
                usage_chunk = bool(body.stream_options and body.stream_options.include_usage)
                return StreamingResponse(_sse(run, body.model, completion_id, created, conv, idx, usage_chunk),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            pieces: list[str] = []
            while True:
                kind, payload = await run.next(request)
                if kind == "token":
                    pieces.append(payload)
                elif kind == "failed":
                    raise payload
                elif kind == "done":
                    return _completion(payload, body.model, completion_id, created)
        except ClientGone:
            return Response(status_code=499)
        finally:
            if not handed_over:
                run.cancel()
                runs.discard(job.cancel)
            metrics.queue.set(gate.admitted)

    async def _sse(run: ChatRun, model: str, completion_id: str, created: int, conv: int, idx: int,
                   usage_chunk: bool = False) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices, **extra}
            return f"data: {json.dumps(data)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""}, conversation_id=conv, turn=idx)
            while True:
                kind, payload = await run.next(None)  # starlette cancels this generator if the client leaves
                if kind == "token":
                    yield chunk({"content": payload})
                elif kind == "done":
                    f: Finished = payload
                    yield chunk({}, f.finish_reason, **_extras(f), usage=_usage(f).model_dump())
                    if usage_chunk:  # stream_options.include_usage: OpenAI's last chunk, usage and no choices
                        yield chunk(None, usage=_usage(f).model_dump())
                    break
                elif kind in ("failed", "error"):
                    err: ApiError = payload
                    yield chunk({}, "stop", conversation_id=conv, turn=idx, complete=False,
                                error=error_json(err.message, err.type, err.code)["error"])
                    break
            yield "data: [DONE]\n\n"
        finally:
            run.cancel()
            runs.discard(run.job.cancel)

    @app.post("/v1/embeddings", response_model=EmbeddingList, tags=["openai"], dependencies=guard, responses=errors)
    async def embeddings(body: EmbeddingRequest) -> EmbeddingList:
        """Unit-length vectors from the retrieval embedder (float lists, or base64 float32 as OpenAI sends)."""
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise ApiError(400, "'input' is empty: send a text or a list of texts", "empty_input", "input")
        if len(texts) > MAX_EMBED_INPUTS:
            raise ApiError(400, f"'input' has {len(texts)} texts; at most {MAX_EMBED_INPUTS} per request", "too_many_inputs", "input")
        vectors, tokens = await on_model(service.embed, texts, body.encoding_format, MAX_EMBED_TOKENS, on=embed_gate)
        return EmbeddingList(data=[Embedding(index=i, embedding=v) for i, v in enumerate(vectors)],
                             model=service.embedder_name, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))

    @app.get("/v1/search", response_model=SearchResult, tags=["chatkit"], dependencies=guard, responses=errors)
    async def search(q: str = Query(..., min_length=1, max_length=4000, description="what to look for"),
                     k: int | None = Query(None, ge=1, le=100, description="number of hits (default retrieval.k)"),
                     mode: str | None = Query(None, pattern="^(dense|bm25|hybrid)$")) -> SearchResult:
        """Ranked passages from the server's collections, like `chatkit search`."""
        q = without_surrogates(q)
        if not q.strip():
            raise ApiError(400, "the query 'q' is blank", "empty_query", "q")
        hits = await on_model(service.search, q, k or settings.retrieval.k, mode)
        return SearchResult(query=q, hits=hits)

    @app.post("/v1/feedback", response_model=FeedbackResult, tags=["chatkit"], dependencies=guard, responses=errors)
    async def feedback(body: FeedbackRequest) -> FeedbackResult:
        """Rate an answer +1 or -1, by the `conversation_id` and `turn` its response carried."""
        await run_in_threadpool(service.rate, body.conversation_id, body.turn, body.rating, body.comment)
        return FeedbackResult(conversation_id=body.conversation_id, turn=body.turn, rating=body.rating)

    _openapi_without_422(app)
    known = {getattr(r, "path", "") for r in app.routes}
    # Outermost first: metrics see every answer (401 and 413 too), auth runs before the body is read.
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes if max_body_bytes is None else max_body_bytes)
    app.add_middleware(AuthMiddleware, api_key=key)
    app.add_middleware(MetricsMiddleware, metrics=metrics, known_paths=lambda: known)
    return app


def _extras(f: Finished) -> dict[str, Any]:
    cited = {c.n for c in f.answer.citations}
    out: dict[str, Any] = {"sources": [s.model_dump() for s in source_list(f.answer.hits, cited)],
                           "conversation_id": f.conversation_id, "turn": f.turn, "abstained": f.answer.abstained,
                           "complete": f.answer.complete}
    if f.error:
        out["error"] = error_json(f.error, "server_error", "generation_failed")["error"]
    return out


def _usage(f: Finished) -> Usage:
    return Usage(prompt_tokens=f.prompt_tokens, completion_tokens=f.completion_tokens,
                 total_tokens=f.prompt_tokens + f.completion_tokens)


def _completion(f: Finished, model: str, completion_id: str, created: int) -> ChatCompletion:
    extras = _extras(f)
    extras.pop("error", None)
    return ChatCompletion(id=completion_id, created=created, model=model, usage=_usage(f),
                          choices=[Choice(message=AssistantMessage(content=f.answer.text),
                                          finish_reason="length" if f.finish_reason == "length" else "stop")],
                          **extras)


class AuthMiddleware:
    """`Authorization: Bearer KEY` on /v1/* and /metrics when the server has a key; /health stays open."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] == "http" and self.api_key and str(scope.get("path", "")).startswith(PROTECTED):
            header = dict(scope.get("headers") or []).get(b"authorization")
            if not key_matches(header.decode("latin-1") if header else None, self.api_key):
                body = error_body("invalid or missing API key: send 'Authorization: Bearer KEY'",
                                  "authentication_error", "invalid_api_key")
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self.app(scope, receive, send)


def _openapi_without_422(app: FastAPI) -> None:
    """Validation errors are answered 400 (as OpenAI does), so the schema says 400, not FastAPI's 422."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)
            comps = schema.get("components", {}).get("schemas", {})
            comps.pop("HTTPValidationError", None)
            comps.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from chatkit import __version__

    return __version__
