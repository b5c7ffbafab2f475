"""What keeps the server safe and steady: the bind check, API-key comparison, the request-body limit,
and the model gate (one generation at a time, a bounded queue, 503 when it is full)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from chatkit.errors import ConfigError

T = TypeVar("T")


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str) -> None:
    """Loopback needs nothing; any other address (0.0.0.0, a LAN IP, a host name) needs an API key."""
    if not host.strip():
        raise ConfigError("server.host is empty", "e.g. --host 127.0.0.1")
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"refusing to serve on {host} without an API key: anyone who can reach it could use it",
                          "pass --api-key KEY (or set server.api_key), or keep the default --host 127.0.0.1")


def key_matches(header: str | None, api_key: str) -> bool:
    """`Authorization: Bearer KEY`, compared in constant time."""
    if not api_key:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), api_key.encode("utf-8"))


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode("utf-8")


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 before the app sees them (declared or chunked).

    The body is read here (at most `max_bytes` kept) and replayed to the app; after it, `receive` is the
    server's own, so the app still learns when the client disconnects."""

    DRAIN_CAP = 64 * 1024 * 1024  # past this an oversize upload is not read on; the connection closes

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = False
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False  # the server rejects a garbled length itself
        body = bytearray()
        seen = 0
        disconnected = False
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            more = bool(message.get("more_body", False))
            if too_big or seen > self.max_bytes:
                too_big = True
                if seen > self.DRAIN_CAP:
                    break
                continue
            body += chunk
        if too_big:
            await _send_json(send, 413, error_body(f"the request body is over the {self.max_bytes}-byte limit",
                                                   code="request_too_large"))
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Callable[[Any], Any], status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("the model queue is full")
        self.retry_after = retry_after


class ModelGate:
    """One worker thread owns the model: jobs run one at a time, in arrival order.

    At most 1 + `queue_size` jobs are admitted (the running one and those waiting); `submit` refuses
    more with QueueFull, which the app answers with 503 and a Retry-After estimate. Everything that
    touches the engine and searcher goes through the app's model gate, so neither is used by two
    threads at once, and the event loop never blocks on the model; /v1/embeddings has a gate of its
    own (the embedder locks itself)."""

    def __init__(self, queue_size: int, name: str = "chatkit-model") -> None:
        self.queue_size = max(0, queue_size)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._admitted = 0
        self._avg_s: float | None = None  # running mean job time, for Retry-After
        self.rejected = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def retry_after(self) -> int:
        return int(min(60, max(1, math.ceil((self._avg_s or 1.0) * max(1, self._admitted)))))

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._admitted >= self.queue_size + 1:
                self.rejected += 1
                raise QueueFull(self.retry_after())
            self._admitted += 1

        def job() -> T:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                took = time.perf_counter() - started
                self._avg_s = took if self._avg_s is None else 0.8 * self._avg_s + 0.2 * took

        def done(_: concurrent.futures.Future[T]) -> None:  # run, failed, or cancelled before it ran
            with self._lock:
                self._admitted -= 1

        try:
            future = self._executor.submit(job)
        except RuntimeError:  # shutting down
            with self._lock:
                self._admitted -= 1
            raise QueueFull(self.retry_after()) from None
        future.add_done_callback(done)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
