"""OpenAI compatibility at the server's edge (issue 20): every OpenAI parameter is honoured or refused
with a 400 naming it; `stop` and `max_tokens` hold in every answer style, streamed or not; lone
surrogates never reach a 500; embeddings are bounded and never hold up the model thread.
Same tiny real parts as tests/test_server.py (its fixtures), a real uvicorn, httpx and `openai`."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatkit.engine import ChatEngine
from tests.test_server import engine, kb_home, make_app, question, released, serving, wait_for  # noqa: F401 - fixtures

Parts = tuple[ChatEngine, Path]

pytest.importorskip("fastapi")
pytest.importorskip("openai")


@pytest.fixture
def parts(request: pytest.FixtureRequest) -> Parts:
    """tests/test_server.py's session-wide engine and data dir (built once for both modules)."""
    return request.getfixturevalue("engine"), request.getfixturevalue("kb_home")


def content(reply: dict[str, Any]) -> str:
    return str(reply["choices"][0]["message"]["content"])


def streamed(http: httpx.Client, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The streamed text and every chunk of a stream=true request."""
    chunks = []
    with http.stream("POST", "/v1/chat/completions", json=body | {"stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks


def test_lone_surrogates_are_replaced_at_the_edge_never_a_500(parts: Parts, tmp_path: Path) -> None:
    chat_engine, home = parts
    app, store = make_app(chat_engine, home, tmp_path / "c.sqlite")
    headers = {"content-type": "application/json"}
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        # Raw JSON: the escape "\ud800" is valid JSON, but no UTF-8 can carry the string it decodes to.
        raw = b'{"messages":[{"role":"user","content":"What is \\ud800 LoRA?"}]}'
        r = http.post("/v1/chat/completions", content=raw, headers=headers)
        assert r.status_code == 200, r.text
        conv = r.json()["conversation_id"]
        (turn,) = store.turns(conv)
        assert turn.question == "What is \ufffd LoRA?"
        r = http.post("/v1/chat/completions", headers=headers,
                      content=b'{"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"LoRA \\udfff?"}]}]}')
        assert r.status_code == 200 and "data: [DONE]" in r.text
        r = http.post("/v1/chat/completions", headers=headers, content=b'{"model":"x\\ud800","messages":[{"role":"user","content":"hi"}]}')
        assert r.status_code == 404 and "x\ufffd" in r.json()["error"]["message"]
        r = http.post("/v1/chat/completions", headers=headers,
                      content=b'{"stop":"\\udc00","messages":[{"role":"user","content":"What does LoRA freeze?"}]}')
        assert r.status_code == 200
        r = http.post("/v1/embeddings", content=b'{"input":["LoRA \\ud800","\\udbff"]}', headers=headers)
        assert r.status_code == 200 and len(r.json()["data"]) == 2
        r = http.post("/v1/feedback", headers=headers,
                      content=f'{{"conversation_id":{conv},"turn":0,"rating":1,"comment":"ok \\ud800"}}'.encode())
        assert r.status_code == 200
        assert http.get("/v1/search", params={"q": "LoRA \udc80".encode("utf-8", "surrogateescape")}).status_code == 200


REFUSED = [
    ("presence_penalty", 0.5), ("frequency_penalty", -1.0), ("logprobs", True), ("top_logprobs", 2),
    ("logit_bias", {"42": -100}), ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]), ("tool_choice", "required"),
    ("functions", [{"name": "f"}]), ("function_call", {"name": "f"}), ("n", 2), ("modalities", ["text", "audio"]),
    ("audio", {"voice": "alloy", "format": "wav"}), ("prediction", {"type": "content", "content": "x"}),
    ("reasoning_effort", "high"), ("web_search_options", {}), ("store", False),
]


def test_openai_parameters_are_honoured_or_refused_by_name(parts: Parts, tmp_path: Path) -> None:
    chat_engine, home = parts
    import openai

    app, _ = make_app(chat_engine, home, tmp_path / "c.sqlite")
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        for name, value in REFUSED:
            r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?", **{name: value}))
            assert r.status_code == 400, (name, r.text)
            error = r.json()["error"]
            assert error["param"] == name and f"'{name}'" in error["message"], error
        r = http.post("/v1/chat/completions", json=question("What is LoRA?", stream_options={"include_usage": True}))
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"  # only with stream=true
        r = http.post("/v1/chat/completions", json=question("What is LoRA?", stream=True, stream_options={"include_obfuscation": True}))
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options.include_obfuscation"

        defaults = {"presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False, "top_logprobs": 0, "logit_bias": {},
                    "response_format": {"type": "text"}, "tools": [], "tool_choice": "none", "n": 1, "modalities": ["text"],
                    "store": True, "parallel_tool_calls": False, "metadata": {"a": "b"}, "user": "u"}
        r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?", **defaults))
        assert r.status_code == 200, r.text

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
        ask = [{"role": "user", "content": "What does LoRA freeze?"}]
        with pytest.raises(openai.BadRequestError, match="'presence_penalty' is not supported") as refused:
            client.chat.completions.create(model="chatkit", messages=ask, presence_penalty=1.0)  # type: ignore[arg-type]
        assert refused.value.param == "presence_penalty"
        chunks = list(client.chat.completions.create(model="chatkit", messages=ask, stream=True,  # type: ignore[arg-type]
                                                     stream_options={"include_usage": True}))
        assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        assert chunks[-2].choices[0].finish_reason == "stop"


def test_stop_and_max_tokens_hold_in_every_style_streamed_or_not(parts: Parts, tmp_path: Path) -> None:
    chat_engine, home = parts
    app, store = make_app(chat_engine, home, tmp_path / "c.sqlite")
    tokens = chat_engine.generator.count_tokens
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        def answer(**fields: Any) -> dict[str, Any]:
            r = http.post("/v1/chat/completions", json=question("Why is LoRA cheap?", **fields))
            assert r.status_code == 200, r.text
            return dict(r.json())

        whole = content(answer(style="extractive"))
        at = whole.index(" low-rank")
        for style in ("extractive", "auto"):
            cut = answer(style=style, stop=["never-said", " low-rank"])
            assert content(cut) == whole[:at] and cut["choices"][0]["finish_reason"] == "stop", style
            assert store.turns(cut["conversation_id"])[0].answer == content(cut)
            text, _ = streamed(http, question("Why is LoRA cheap?", style=style, stop=" low-rank"))
            # (auto streams the model's own text first, then the quoted answer that replaces it)
            assert text.strip() == whole[:at] if style == "extractive" else text.endswith("\n\n" + whole[:at]), style

        for style in ("extractive", "auto", "generative"):
            short = answer(style=style, max_tokens=5)
            assert tokens(content(short)) <= 5 < tokens(whole) and short["choices"][0]["finish_reason"] == "length", (style, short)
            assert short["usage"]["completion_tokens"] <= 5
            assert store.turns(short["conversation_id"])[0].answer == content(short)
        text, chunks = streamed(http, question("Why is LoRA cheap?", style="extractive", max_tokens=5))
        assert tokens(text) <= 5 and chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_embeddings_are_bounded_and_never_hold_up_the_model_thread(parts: Parts, tmp_path: Path) -> None:
    chat_engine, home = parts
    from chatkit.server.app import MAX_EMBED_TOKENS

    app, _ = make_app(chat_engine, home, tmp_path / "c.sqlite")
    limit = chat_engine.searcher.embedder.max_tokens
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        too_many = ["lora " * (limit + 10)] * (MAX_EMBED_TOKENS // limit + 1)  # each counts as `limit`: one text too many
        r = http.post("/v1/embeddings", json={"input": too_many})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input"
        assert r.json()["error"]["code"] == "too_many_tokens" and str(MAX_EMBED_TOKENS) in r.json()["error"]["message"]
        assert len(too_many) < 256  # refused for its tokens, not its number of texts

        # A long embedding job running: chat answers meanwhile (it is not queued behind it) ...
        release = threading.Event()
        with released(release):
            app.state.embed_gate.submit(release.wait)
            waiting: dict[str, Any] = {}
            t = threading.Thread(target=lambda: waiting.update(r=httpx.post(f"{url}/v1/embeddings", json={"input": "LoRA"}, timeout=60)))
            t.start()
            wait_for(lambda: app.state.embed_gate.admitted == 2)
            r = http.post("/v1/chat/completions", json=question("What does LoRA freeze?"))
            assert r.status_code == 200 and "LoRA freezes" in content(r.json())
            assert "r" not in waiting  # the embeddings request still waits for its own thread
            release.set()
            t.join(60)
            assert waiting["r"].status_code == 200
        # ... and a busy model thread does not hold up embeddings.
        release = threading.Event()
        with released(release):
            app.state.gate.submit(release.wait)
            assert http.post("/v1/embeddings", json={"input": ["LoRA", "FAISS"]}).status_code == 200
