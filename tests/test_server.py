"""`chatkit serve`: the FastAPI app built in-process from tiny real parts (the 4-layer Llama from conftest,
a real small collection with the packaged embedder), served by a real uvicorn on a random loopback port
and driven with the official `openai` client and httpx; the OpenAPI schema is fuzzed with schemathesis."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatkit.config import Paths, load_settings
from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine
from chatkit.prompting import strip_invalid_citations
from chatkit.server.limits import ModelGate, QueueFull, check_bind, is_loopback, key_matches
from tests.conftest import run_cli

pytest.importorskip("fastapi")
pytest.importorskip("openai")

KEY = "s3cret-key"
DOCS = {
    "lora.md": "---\ntitle: LoRA\n---\n# LoRA\n\n## Why LoRA is cheap\n\nLoRA freezes the pre-trained weights and trains two small "
               "low-rank matrices. Far fewer parameters are trained, so memory and compute drop.\n",
    "faiss.md": "---\ntitle: FAISS\n---\n# FAISS\n\n## Indexes\n\nFAISS finds nearest neighbour vectors with flat and HNSW indexes.\n",
    "perplexity.md": "---\ntitle: Perplexity\n---\n# Perplexity\n\nPerplexity is the exponential of the average negative "
                     "log-likelihood per token of held-out text.\n",
}


@pytest.fixture(scope="session")  # session: tests/test_server_compat.py shares it
def kb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return notes_home(tmp_path_factory.mktemp("serve-kb"), DOCS)


def notes_home(root: Path, docs: dict[str, str]) -> Path:
    """A data dir under `root` with one collection, 'notes', of `docs` (file name -> text)."""
    from chatkit.indexing import ensure_collection

    folder = root / "notes"
    folder.mkdir()
    for name, text in docs.items():
        (folder / name).write_text(text)
    home = root / "home"
    ensure_collection(load_settings(), Paths(home).ensure(), "notes", folder)
    return home


@pytest.fixture(scope="session")
def engine(kb_home: Path, tiny_model_dir: Path) -> ChatEngine:
    from chatkit.generation.hf import HFGenerator
    from chatkit.retrieval.service import open_searcher

    settings = load_settings(overrides=["generation.max_new_tokens=12", "engine.abstain_threshold=0.2"])
    paths = Paths(kb_home)
    generator = HFGenerator(str(tiny_model_dir), "float32")
    generator.model_id = "tiny-llama"
    return ChatEngine(settings, open_searcher(settings, paths, ["notes"]), generator, adapters_dir=paths.adapters)


def make_app(engine: ChatEngine, kb_home: Path, db: Path, **kwargs: Any) -> tuple[Any, ConversationStore]:
    from chatkit.server.app import create_app

    engine.use_adapter("base")
    store = ConversationStore(db)
    return create_app(engine, store, Paths(kb_home), collections=["notes"], **kwargs), store


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 and a free port, in a thread."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextmanager
def released(event: threading.Event) -> Iterator[None]:
    """Whatever happens, let a job that blocks the model thread go (its thread would keep Python alive)."""
    try:
        yield
    finally:
        event.set()


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def question(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "chatkit", "messages": [{"role": "user", "content": text}], **extra}


# --- the official openai client against a real server ---------------------------------------------


def test_openai_client_streamed_and_not_with_sources(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    import openai

    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite", api_key=KEY)
    with serving(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        ids = [m.id for m in client.models.list()]
        assert ids[:2] == ["chatkit", "base"]

        reply = client.chat.completions.create(model="chatkit", messages=[{"role": "user", "content": "What does LoRA freeze?"}])
        content = reply.choices[0].message.content or ""
        assert "LoRA freezes the pre-trained weights" in content and reply.choices[0].finish_reason == "stop"
        extra = reply.model_extra or {}
        assert extra["sources"][0]["doc_id"] == "notes/lora" and extra["sources"][0]["cited"] is True
        assert extra["abstained"] is False and extra["turn"] == 0
        (turn,) = store.turns(extra["conversation_id"])
        assert turn.question == "What does LoRA freeze?" and turn.complete and turn.source == "server"
        assert turn.passages[0]["doc_id"] == "notes/lora" and turn.answer == content

        stream = client.chat.completions.create(model="base", stream=True, max_tokens=20,
                                                messages=[{"role": "user", "content": "Why is LoRA cheap?"}],
                                                extra_body={"style": "generative"})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # token by token
        final = chunks[-1]
        assert final.choices[0].finish_reason == "length"  # the tiny model never says EOS within 20 tokens
        fx = final.model_extra or {}
        assert fx["sources"] and fx["sources"][0]["doc_id"] == "notes/lora"
        assert final.usage is not None and final.usage.completion_tokens == 20
        (turn,) = store.turns(fx["conversation_id"])
        assert turn.complete and turn.timings["new_tokens"] == 20 and text.strip()

        vectors = client.embeddings.create(model="anything", input=["LoRA", "FAISS indexes"])  # base64 on the wire
        assert [len(d.embedding) for d in vectors.data] == [384, 384]
        assert abs(sum(x * x for x in vectors.data[0].embedding) - 1.0) < 1e-3

        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        with pytest.raises(openai.BadRequestError, match="empty"):
            client.chat.completions.create(model="chatkit", messages=[])
        assert client.chat.completions.create(model="chatkit", messages=[{"role": "user", "content": "What is FAISS?"}]).choices


# --- bad input over real HTTP: 4xx with a clear message, and the server keeps serving -------------


def test_bad_requests_get_4xx_and_the_server_keeps_serving(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, _ = make_app(engine, kb_home, tmp_path / "c.sqlite", api_key=KEY, max_body_bytes=4096)
    auth = {"Authorization": f"Bearer {KEY}"}
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        def err(r: httpx.Response) -> str:
            return str(r.json()["error"]["message"])

        r = http.post("/v1/chat/completions", content=b'{"model": "chatkit", "messages": [', headers=auth | {"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in err(r)
        r = http.post("/v1/chat/completions", json={"model": "chatkit"}, headers=auth)
        assert r.status_code == 400 and "messages" in err(r)
        r = http.post("/v1/chat/completions", json={"model": "chatkit", "messages": []}, headers=auth)
        assert r.status_code == 400 and "empty" in err(r) and r.json()["error"]["param"] == "messages"
        r = http.post("/v1/chat/completions", json=question("   "), headers=auth)
        assert r.status_code == 400 and "empty" in err(r)
        r = http.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]}, headers=auth)
        assert r.status_code == 400 and "last message" in err(r)
        r = http.post("/v1/chat/completions", json=question("hi", model="nope"), headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = http.post("/v1/chat/completions", json=question("x" * 5000), headers=auth)
        assert r.status_code == 413 and "4096-byte limit" in err(r)
        r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?"), headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "API key" in err(r)
        assert http.get("/v1/models").status_code == 401
        assert http.get("/metrics").status_code == 401
        assert http.get("/health").status_code == 200  # open for load balancers
        r = http.get("/v1/nothing-here", headers=auth)
        assert r.status_code == 404 and "no endpoint" in err(r)
        r = http.get("/v1/search", params={"q": ""}, headers=auth)
        assert r.status_code == 400
        r = http.post("/v1/chat/completions", json=question("hi", conversation_id=999), headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
        r = http.post("/v1/feedback", json={"conversation_id": 999, "turn": 0, "rating": 1}, headers=auth)
        assert r.status_code == 404
        r = http.post("/v1/feedback", json={"conversation_id": 1, "turn": 0, "rating": 5}, headers=auth)
        assert r.status_code == 400

        r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?"), headers=auth)
        assert r.status_code == 200 and "LoRA freezes" in r.json()["choices"][0]["message"]["content"]
        metrics = http.get("/metrics", headers=auth).text
        assert 'chatkit_http_requests_total{method="POST",path="/v1/chat/completions",status="413"} 1.0' in metrics
        assert 'path="other"' in metrics and "/v1/nothing-here" not in metrics


def test_conversation_continues_feedback_search_and_plain_chat(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite")
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        first = http.post("/v1/chat/completions", json=question("Tell me about FAISS indexes")).json()
        conv = first["conversation_id"]
        second = http.post("/v1/chat/completions", json=question("and which ones?", conversation_id=conv)).json()
        assert second["conversation_id"] == conv and second["turn"] == 1
        # alone, "and which ones?" matches nothing well (abstains); with the stored turn as history it is about FAISS
        assert second["sources"][0]["doc_id"] == "notes/faiss" and second["abstained"] is False
        assert [t.question for t in store.turns(conv)] == ["Tell me about FAISS indexes", "and which ones?"]
        chat = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "What is perplexity?"},
                {"role": "assistant", "content": "The exponential of the average negative log-likelihood [1]."},
                {"role": "user", "content": [{"type": "text", "text": "and which ones?"}]}]
        again = http.post("/v1/chat/completions", json={"model": "chatkit", "messages": chat}).json()
        assert again["sources"][0]["doc_id"] == "notes/perplexity" and again["abstained"] is False  # messages = history
        assert again["turn"] == 0 and store.turns(again["conversation_id"])[0].question == "and which ones?"

        off = http.post("/v1/chat/completions", json=question("What is the capital of Australia?")).json()
        assert off["abstained"] is True and off["sources"] and not any(s["cited"] for s in off["sources"])

        r = http.post("/v1/feedback", json={"conversation_id": conv, "turn": 1, "rating": -1, "comment": "vague"})
        assert r.status_code == 200 and r.json()["rating"] == -1
        assert store.turns(conv)[1].rating == -1 and store.turns(conv)[1].comment == "vague"

        hits = http.get("/v1/search", params={"q": "perplexity", "k": 2}).json()["hits"]
        assert len(hits) == 2 and hits[0]["doc_id"] == "notes/perplexity"

        plain = http.post("/v1/chat/completions", json=question("hello", rag=False, max_tokens=5)).json()
        assert plain["sources"] == [] and plain["usage"]["completion_tokens"] == 5
        assert store.turns(plain["conversation_id"])[0].passages == ()

        metrics = http.get("/metrics").text
        for name in ("chatkit_retrieval_top_score_bucket", "chatkit_abstentions_total", 'chatkit_feedback_total{rating="bad"} 1.0',
                     "chatkit_generated_tokens_total", "chatkit_generation_tokens_per_second_bucket",
                     "chatkit_http_request_duration_seconds_bucket"):
            assert name in metrics, name
        health = http.get("/health").json()
        assert health == {"status": "ok", "model": "tiny-llama", "adapter": "base", "collections": ["notes"], "queue": 0,
                          "queue_size": 16}


def test_registered_adapter_is_a_model(engine: ChatEngine, kb_home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.test_tui_fixtures import make_adapter

    make_adapter(tiny_model_dir, Paths(kb_home).adapters / "tutor")
    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite")
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["chatkit", "base", "tutor"]
            r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?", model="tutor"))
            assert r.status_code == 200 and r.json()["model"] == "tutor"
            assert store.turns(r.json()["conversation_id"])[0].adapter == "tutor"
            r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?"))
            assert store.turns(r.json()["conversation_id"])[0].adapter == "base"  # 'chatkit' is the server's default
    finally:
        engine.use_adapter("base")


# --- load: the queue, 503 + Retry-After, disconnects ----------------------------------------------


def test_full_queue_answers_503_with_retry_after(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, _ = make_app(engine, kb_home, tmp_path / "c.sqlite", queue_size=1)
    gate: ModelGate = app.state.gate
    release = threading.Event()
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http, released(release):
        gate.submit(release.wait)  # the model is busy with a long job
        waiting: dict[str, Any] = {}
        t = threading.Thread(target=lambda: waiting.update(r=httpx.post(f"{url}/v1/chat/completions", json=question("What is FAISS?"), timeout=60)))
        t.start()
        wait_for(lambda: gate.admitted == 2)  # one running, one waiting: the queue (size 1) is full
        r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?"))
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "queue_full"
        assert http.get("/v1/search", params={"q": "LoRA"}).status_code == 503  # search shares the model thread
        started = time.perf_counter()
        assert http.get("/health").json()["queue"] == 2  # the event loop stays responsive meanwhile
        assert time.perf_counter() - started < 2
        release.set()
        t.join(60)
        assert waiting["r"].status_code == 200 and waiting["r"].json()["sources"]
        assert "chatkit_queue_rejections_total 2.0" in http.get("/metrics").text
        wait_for(lambda: gate.admitted == 0)


def test_client_disconnect_stops_generation(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite")
    gate: ModelGate = app.state.gate
    body = question("Why is LoRA cheap?", stream=True, style="generative", max_tokens=1000)
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            head = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
            conv = head["conversation_id"]
            received = ""
            for line in lines:  # a few tokens arrive
                if line.startswith("data: {"):
                    received += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                if len(received.strip()) >= 20:
                    break
        # closing the response drops the connection mid-answer
        wait_for(lambda: gate.admitted == 0)  # the answer was stored before the model thread let go
        (turn,) = store.turns(conv)
        assert not turn.complete and 0 < turn.timings["new_tokens"] < 1000
        assert turn.answer.startswith(strip_invalid_citations(received, len(turn.passages)).strip())  # what the client saw is kept


def test_openai_sampling_fields_reach_generation(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite")
    generative = {"style": "generative", "max_tokens": 30}
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        def answer(**fields: Any) -> dict[str, Any]:
            r = http.post("/v1/chat/completions", json=question("Why is LoRA cheap?", **fields))
            assert r.status_code == 200, r.text
            return dict(r.json())

        def text(reply: dict[str, Any]) -> str:
            return str(reply["choices"][0]["message"]["content"])

        full = answer(**generative)
        assert full["usage"]["completion_tokens"] == 30 and full["choices"][0]["finish_reason"] == "length"
        assert answer(**generative)["choices"] == full["choices"]  # greedy: the same answer twice
        sampled = [text(answer(**generative, temperature=1.5, top_p=0.95, seed=s)) for s in (1, 1, 2)]
        assert sampled[0] == sampled[1] != sampled[2] and sampled[0] != text(full)  # seeded sampling

        whole, seeded = sampled[0], generative | {"temperature": 1.5, "top_p": 0.95, "seed": 1}
        at = next(i for i in range(len(whole) // 3, len(whole) - 3) if whole.find(whole[i:i + 3]) == i and whole[i:i + 3].strip())
        stop = whole[at:at + 3]  # its first occurrence is a third of the way in
        cut = answer(**seeded, stop=[stop, "never-said"])
        assert text(cut) == whole[:at].strip() and cut["choices"][0]["finish_reason"] == "stop"
        assert text(answer(**seeded, stop=stop)) == text(cut)  # a single string works too
        assert answer(style="generative", max_completion_tokens=5)["usage"]["completion_tokens"] == 5

        long = answer(style="extractive")
        short = answer(style="extractive", max_tokens=4)
        assert engine.generator.count_tokens(text(short)) <= 4 < engine.generator.count_tokens(text(long))
        assert short["choices"][0]["finish_reason"] == "length" and text(long).startswith(text(short))
        assert store.turns(short["conversation_id"])[0].answer == text(short)

        r = http.post("/v1/chat/completions", json=question("hi", stop=["a", "b", "c", "d", "e"]))
        assert r.status_code == 400 and str(r.json()["error"]["param"]).startswith("stop")
        assert http.post("/v1/chat/completions", json=question("hi", stop="")).status_code == 400


def test_client_that_leaves_while_queued_never_reaches_the_model(engine: ChatEngine, kb_home: Path, tmp_path: Path) -> None:
    app, store = make_app(engine, kb_home, tmp_path / "c.sqlite")
    gate: ModelGate = app.state.gate
    release = threading.Event()
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http, released(release):
        gate.submit(release.wait)
        before = len(store.all_turns())
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=question("What is FAISS?"), timeout=0.5)
        wait_for(lambda: 'status="499"' in http.get("/metrics").text)  # the server saw it go (499: client closed)
        assert gate.admitted == 2  # its job still holds a place until the model thread reaches it
        release.set()
        wait_for(lambda: gate.admitted == 0)
        assert len(store.all_turns()) == before == 0  # no conversation, no turn


# --- security -------------------------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_a_key(tmp_path: Path) -> None:
    r = run_cli("--home", str(tmp_path / "h"), "serve", "--host", "0.0.0.0")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: refusing to serve on 0.0.0.0 without an API key") and "--api-key" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("--home", str(tmp_path / "h"), "--set", "server.host=192.168.1.5", "serve")
    assert r.returncode == 1 and r.stderr.startswith("error: refusing to serve on 192.168.1.5")


def test_bind_and_key_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org") and not is_loopback("10.0.0.1")
    check_bind("127.0.0.1", "")
    check_bind("0.0.0.0", "k")
    from chatkit.errors import ChatkitError

    with pytest.raises(ChatkitError, match="without an API key"):
        check_bind("0.0.0.0", "")
    assert key_matches("Bearer k1", "k1") and key_matches("bearer k1", "k1") and key_matches(None, "")
    assert not key_matches("Bearer k2", "k1") and not key_matches("k1", "k1") and not key_matches(None, "k1")


def test_gate_runs_one_job_at_a_time_and_refuses_past_the_queue() -> None:
    gate = ModelGate(queue_size=2)
    release = threading.Event()
    active: list[int] = []
    peak: list[int] = []

    def job() -> None:
        active.append(1)
        peak.append(len(active))
        release.wait(10)
        active.pop()

    futures = [gate.submit(job) for _ in range(3)]
    with pytest.raises(QueueFull) as exc:
        gate.submit(job)
    assert exc.value.retry_after >= 1 and gate.admitted == 3
    release.set()
    for f in futures:
        f.result(10)
    assert max(peak) == 1 and gate.admitted == 0
    gate.submit(job).result(10)
    gate.close()


def test_help_does_not_import_the_server_stack() -> None:
    import subprocess
    import sys

    code = ("import sys; from chatkit.cli import build_parser; build_parser().format_help(); "
            "print([m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# --- the OpenAPI schema, fuzzed -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_app(engine: ChatEngine, kb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import schemathesis

    # Short answers keep the fuzzed generations fast: max_tokens is capped at half the context.
    saved = engine.settings.generation.context_tokens
    engine.settings.generation.context_tokens = 256
    app, _ = make_app(engine, kb_home, tmp_path_factory.mktemp("fuzz") / "c.sqlite")
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    engine.settings.generation.context_tokens = saved


def _fuzz_schema() -> Any:
    import schemathesis

    return schemathesis.pytest.from_fixture("fuzz_app")


try:
    fuzz_schema = _fuzz_schema()
except ImportError:  # schemathesis not installed: the fuzz test is skipped below
    fuzz_schema = None

if fuzz_schema is not None:
    from hypothesis import HealthCheck, settings
    from schemathesis import checks

    @fuzz_schema.parametrize()
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def test_openapi_fuzz_no_server_errors(case: Any) -> None:
        def check(response: Any) -> None:
            assert response.status_code < 500 or response.status_code == 503, (
                f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code}: {response.text[:300]}")
            if response.status_code >= 400:
                assert "message" in response.json()["error"]

        response = case.call(timeout=60)
        check(response)
        # Status codes, content types, bodies and headers as the schema says; schema-violating input refused.
        # Left out: positive-data acceptance (a schema-valid chat can still be refused 400, e.g. when
        # its last message is not the user's) and not_a_server_error (503 is the queue's answer, checked above).
        case.validate_response(response, excluded_checks=[checks.positive_data_acceptance, checks.not_a_server_error])
        if case.path == "/v1/chat/completions" and isinstance(case.body, dict):
            # Random bodies rarely get past the message checks; repaired, the fuzzed options reach the model.
            case.body["model"] = "chatkit"
            case.body["messages"] = [{"role": "user", "content": "What does LoRA freeze?"}]
            case.body.pop("conversation_id", None)
            check(case.call(timeout=60))
