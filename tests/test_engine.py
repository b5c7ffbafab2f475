"""ChatEngine with a tiny real model and a real small collection (packaged embedder)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from chatkit.config import Paths, load_settings
from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import AdapterError, CollectionError, InputError
from chatkit.generation.hf import HFGenerator
from chatkit.prompting import ABSTAIN_TEXT
from chatkit.types import Turn
from tests.conftest import run_cli

DOCS = {
    "lora.md": "---\ntitle: LoRA\n---\n# LoRA\n\n## Why LoRA is cheap\n\nLoRA freezes the pre-trained weights and trains two small "
               "low-rank matrices. Far fewer parameters are trained, so memory and compute drop.\n",
    "faiss.md": "---\ntitle: FAISS\n---\n# FAISS\n\n## Indexes\n\nFAISS finds nearest neighbour vectors with flat and HNSW indexes.\n",
    "perplexity.md": "---\ntitle: Perplexity\n---\n# Perplexity\n\nPerplexity is the exponential of the average negative "
                     "log-likelihood per token of held-out text.\n",
}


@pytest.fixture(scope="module")
def kb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chatkit.indexing import ensure_collection

    root = tmp_path_factory.mktemp("kb")
    folder = root / "notes"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    home = root / "home"
    settings = load_settings()
    ensure_collection(settings, Paths(home).ensure(), "notes", folder)
    return home


@pytest.fixture(scope="module")
def engine(kb_home: Path, tiny_model_dir: Path) -> ChatEngine:
    from chatkit.retrieval.service import open_searcher

    settings = load_settings(overrides=["generation.max_new_tokens=12", "engine.abstain_threshold=0.2"])
    paths = Paths(kb_home)
    searcher = open_searcher(settings, paths, ["notes"])
    return ChatEngine(settings, searcher, HFGenerator(str(tiny_model_dir), "float32"), adapters_dir=paths.adapters)


def events(engine: ChatEngine, question: str, **kw: object) -> list:
    return list(engine.chat(question, (), ChatOptions(**kw)))  # type: ignore[arg-type]


def test_event_order_and_answer(engine: ChatEngine) -> None:
    evs = events(engine, "Why is LoRA cheaper than full fine-tuning?", style="generative")
    kinds = [e.kind for e in evs]
    assert kinds[0] == "retrieval" and kinds[-1] == "answer" and "token" in kinds
    answer = evs[-1].answer
    assert answer.hits[0].chunk.doc_id == "notes/lora"
    assert answer.timings["prompt_tokens"] > 0 and answer.timings["total_s"] > 0
    streamed = "".join(e.text for e in evs if e.kind == "token").strip()
    assert answer.text.replace(" ", "") in streamed.replace(" ", "") or answer.dropped_citations >= 0


def test_extractive_answer_quotes_and_cites_the_best_passage(engine: ChatEngine) -> None:
    answer = engine.ask("What does LoRA freeze?", options=ChatOptions(style="extractive"))
    assert "LoRA freezes the pre-trained weights" in answer.text
    assert [c.doc_id for c in answer.citations][:1] == ["notes/lora"]
    assert not answer.abstained


def test_auto_falls_back_when_the_model_cites_nothing(engine: ChatEngine) -> None:
    # The tiny random model never writes a valid citation, so auto must fall back to cited sentences.
    answer = engine.ask("What is perplexity?", options=ChatOptions(style="auto"))
    assert answer.timings.get("fallback") == 1.0 and answer.citations


def test_off_topic_question_abstains_with_closest_sources(engine: ChatEngine) -> None:
    answer = engine.ask("What is the capital of Australia?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == ()
    assert answer.hits  # the closest sources are still shown


def test_bad_questions(engine: ChatEngine) -> None:
    with pytest.raises(InputError):
        engine.ask("   ")
    evs = events(engine, "LoRA " * 5000, style="extractive")
    assert evs[0].kind == "progress" and "only the first" in evs[0].text
    assert evs[-1].answer is not None


def test_unknown_adapter(engine: ChatEngine) -> None:
    with pytest.raises(AdapterError, match="unknown adapter"):
        engine.use_adapter("nope")
    engine.use_adapter("base")
    assert engine.adapter_name == "base"


def test_cancel_keeps_partial_answer_marked_incomplete(engine: ChatEngine) -> None:
    cancel = threading.Event()
    out = []
    for e in engine.chat("Why is LoRA cheap?", (), ChatOptions(style="generative", cancel=cancel)):
        if e.kind == "token":
            cancel.set()
        out.append(e)
    assert out[-1].answer.complete is False


def test_follow_up_uses_history_for_retrieval(engine: ChatEngine) -> None:
    first = engine.ask("Tell me about FAISS indexes", options=ChatOptions(style="extractive"))
    evs = list(engine.chat("and which ones?", [Turn("Tell me about FAISS indexes", first.text, first.hits)], ChatOptions(style="extractive")))
    assert evs[0].data["query"].startswith("Tell me about FAISS")
    assert evs[0].hits[0].chunk.doc_id == "notes/faiss"


def test_crash_mid_answer_keeps_question_and_marks_partial(engine: ChatEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = engine.generator

    def breaks(*args: object, **kwargs: object):
        yield "partial "
        raise RuntimeError("out of memory")

    monkeypatch.setattr(gen, "stream", breaks)
    store = ConversationStore(tmp_path / "c.sqlite")
    conv = store.new_conversation()
    tid = store.start_turn(conv, "Why is LoRA cheap?")
    evs = events(engine, "Why is LoRA cheap?", style="generative")
    assert any(e.kind == "error" for e in evs)
    answer = evs[-1].answer
    assert answer.complete is False and answer.text.startswith("partial")
    store.finish_turn(tid, answer.text, complete=answer.complete)
    (turn,) = store.turns(conv)
    assert turn.question == "Why is LoRA cheap?" and not turn.complete


def test_ask_cli_errors_on_missing_and_empty_collections(tmp_path: Path) -> None:
    r = run_cli("--home", str(tmp_path / "h"), "ask", "What is LoRA?", "--collection", "nothing-here")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: collection 'nothing-here' does not exist") and "chatkit index add" in r.stderr
    r = run_cli("--home", str(tmp_path / "h"), "ask", "   ")
    assert r.returncode == 1 and r.stderr.startswith("error: the question is empty")


def test_missing_collection_is_a_collection_error(kb_home: Path) -> None:
    from chatkit.retrieval.service import open_searcher

    with pytest.raises(CollectionError):
        open_searcher(load_settings(), Paths(kb_home), ["absent"])


def test_ask_cli_json_with_a_tiny_model(kb_home: Path, tiny_model_dir: Path) -> None:
    r = run_cli("--home", str(kb_home), "--set", f"models.dialogue={tiny_model_dir}", "--set", "models.dtype=float32",
                "--set", "generation.max_new_tokens=8", "ask", "What does LoRA freeze?", "--collection", "notes", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"answer", "citations", "abstained", "timings"} <= set(out)
    assert out["citations"] and out["citations"][0]["doc_id"] == "notes/lora"
    assert {"n", "doc_id", "title", "source"} == set(out["citations"][0])
    store = ConversationStore(kb_home / "conversations.sqlite")
    turns = store.turns(out["conversation"])
    assert turns[0].complete and turns[0].passages[0]["doc_id"] == "notes/lora"
