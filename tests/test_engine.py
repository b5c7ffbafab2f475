"""ChatEngine with a tiny real model and a real small collection (packaged embedder)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatkit.config import Paths, load_settings
from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import AdapterError, CollectionError, InputError
from chatkit.generation.hf import HFGenerator
from chatkit.prompting import ABSTAIN_TEXT, parse_citations, strip_invalid_citations
from chatkit.recording import TurnRecording
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
    evs = events(engine, "Why is LoRA cheap to train?", style="generative")
    kinds = [e.kind for e in evs]
    assert kinds[0] == "retrieval" and kinds[-1] == "answer" and "token" in kinds
    answer = evs[-1].answer
    assert answer.hits[0].chunk.doc_id == "notes/lora"
    assert answer.timings["prompt_tokens"] > 0 and answer.timings["total_s"] > 0
    streamed = "".join(e.text for e in evs if e.kind == "token").strip()
    # The stored answer is exactly what was streamed, less the citations that point at no passage.
    _, dropped = parse_citations(streamed, len(answer.hits))
    assert not answer.abstained and answer.dropped_citations == dropped
    assert answer.text == strip_invalid_citations(streamed, len(answer.hits)).strip()


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


def test_refusal_gate_names_its_reason(engine: ChatEngine) -> None:
    hits = engine.searcher.search("Why is LoRA cheap?", k=3)
    best = max(h.dense_score or 0.0 for h in hits)
    assert engine.refusal_reason("Why is LoRA cheap?", hits, best) == ""
    # A typo of a known term still counts as known; a term no document holds does not.
    assert engine.refusal_reason("Why does LoRA train fewer paramters?", hits, 0.3) == ""
    assert engine.refusal_reason("Does LoRA train fewer parameters than Mamba?", hits, 0.3) == "no document mentions mamba"
    assert "lack the question's terms" in engine.refusal_reason("What is a good kitten name for pets?", hits, best)
    assert engine.refusal_reason("Why is LoRA cheap?", hits, 0.01) == "weak retrieval"


def test_quoted_refusal_phrase_is_not_a_refusal(kb_home: Path, engine: ChatEngine) -> None:
    hit = engine.searcher.search("LoRA", k=1)[0]
    quoted = dataclasses.replace(hit, chunk=dataclasses.replace(
        hit.chunk, text="Unanswerable rows teach the model to say: The documents don't cover this. LoRA trains low-rank matrices."))
    plan = engine.plan("What does LoRA train?", (), ChatOptions(style="extractive"))
    assert not plan.abstain_reason
    plan.given = (quoted,)
    answer = engine.finish(plan, "Unanswerable rows teach the model to say: The documents don't cover this. [1]")
    assert not answer.abstained and answer.text.startswith("Unanswerable rows") and answer.citations


def test_auto_replaces_a_model_refusal_past_the_gate(engine: ChatEngine) -> None:
    plan = engine.plan("What does LoRA freeze?", (), ChatOptions(style="auto"))
    answer = engine.finish(plan, ABSTAIN_TEXT)
    assert not answer.abstained and answer.timings.get("fallback") == 1.0
    assert "LoRA freezes the pre-trained weights" in answer.text


def test_multi_part_question_gets_each_parts_passage_and_sentence(engine: ChatEngine) -> None:
    answer = engine.ask("What is perplexity and what does FAISS find?", options=ChatOptions(style="extractive"))
    cited = {c.doc_id for c in answer.citations}
    assert {"notes/perplexity", "notes/faiss"} <= cited
    assert "exponential of the average" in answer.text and "nearest neighbour" in answer.text


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


def fail_at_step(engine: ChatEngine, monkeypatch: pytest.MonkeyPatch, n: int, error: BaseException) -> None:
    """Make the real model raise `error` on its n-th decode step, inside the real decode loop."""
    gen = engine.generator
    real_step = gen.step
    calls = []

    def step(token: int):
        calls.append(token)
        if len(calls) == n:
            raise error
        return real_step(token)

    monkeypatch.setattr(gen, "step", step)


def test_crash_mid_answer_keeps_question_and_partial_text(engine: ChatEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The model itself fails after a few tokens (as out-of-memory would), inside the real decode loop;
    # the turn goes through the real recorder into a real store.
    fail_at_step(engine, monkeypatch, 4, RuntimeError("out of memory"))
    store = ConversationStore(tmp_path / "c.sqlite")
    recording = TurnRecording(engine, store, "Why is LoRA cheap?", ChatOptions(style="generative"))
    with recording:
        evs = list(recording.stream())
    assert [e.text for e in evs if e.kind == "error"] == ["generation failed: out of memory"]
    streamed = "".join(e.text for e in evs if e.kind == "token").strip()
    assert streamed and evs[-1].answer.complete is False
    (turn,) = ConversationStore(tmp_path / "c.sqlite").turns(recording.conversation_id)
    assert turn.question == "Why is LoRA cheap?" and not turn.complete
    assert turn.answer == strip_invalid_citations(streamed, len(evs[-1].answer.hits)).strip()
    assert turn.passages and turn.passages[0]["doc_id"] == "notes/lora"


def test_interrupt_mid_answer_keeps_the_streamed_text(engine: ChatEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C lands while the model computes the next token; the caller stops, the recorder keeps the text.
    fail_at_step(engine, monkeypatch, 5, KeyboardInterrupt())
    store = ConversationStore(tmp_path / "c.sqlite")
    recording = TurnRecording(engine, store, "Why is LoRA cheap?", ChatOptions(style="generative"))
    seen = []
    with pytest.raises(KeyboardInterrupt), recording:
        for e in recording.stream():
            seen.append(e)
    streamed = "".join(e.text for e in seen if e.kind == "token").strip()
    (turn,) = store.turns(recording.conversation_id)
    assert streamed and turn.answer == streamed and not turn.complete


def test_an_abandoned_stream_keeps_the_streamed_text(engine: ChatEngine, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    recording = TurnRecording(engine, store, "Why is LoRA cheap?", ChatOptions(style="generative"))
    shown = []
    with recording:
        for e in recording.stream():
            shown += [e.text] if e.kind == "token" else []
            if len(shown) == 3:
                break
    (turn,) = store.turns(recording.conversation_id)
    assert turn.answer == "".join(shown).strip() and turn.answer and not turn.complete


def tiny_model_env(kb_home: Path, dialogue: Path, *more: str) -> list[str]:
    return ["--home", str(kb_home), "--set", f"models.dialogue={dialogue}", "--set", "models.dtype=float32",
            "--set", "generation.backend=hf", *more]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ask_cli_interrupted_mid_answer_stores_what_it_printed(kb_home: Path, tiny_model_dir: Path, sig: int) -> None:
    args = tiny_model_env(kb_home, tiny_model_dir, "--set", "generation.max_new_tokens=1500")
    args += ["ask", f"Why is LoRA cheap? ({sig})", "--collection", "notes", "--style", "generative"]
    proc = subprocess.Popen([sys.executable, "-m", "chatkit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed = b""
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    while len(printed.decode("utf-8", "ignore").strip()) < 30:  # some of the answer is on the screen
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        printed += os.read(proc.stdout.fileno(), 4096)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert b"Sources:" not in out  # it really stopped mid-answer
    store = ConversationStore(kb_home / "conversations.sqlite")
    turn = next(t for t in store.all_turns() if t.question == f"Why is LoRA cheap? ({sig})")
    assert not turn.complete and turn.source == "cli" and turn.passages
    assert turn.answer.startswith(printed.decode("utf-8", "ignore").strip())


def test_extractive_ask_never_loads_the_dialogue_model(kb_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    r = run_cli(*tiny_model_env(kb_home, broken), "ask", "What does LoRA freeze?", "--collection", "notes",
                "--style", "extractive", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "LoRA freezes the pre-trained weights" in out["answer"] and out["citations"][0]["doc_id"] == "notes/lora"
    (turn,) = ConversationStore(kb_home / "conversations.sqlite").turns(out["conversation"])
    assert turn.complete and turn.model == ""  # no dialogue model answered it
    r = run_cli(*tiny_model_env(kb_home, broken), "ask", "What does LoRA freeze?", "--collection", "notes", "--style", "generative")
    assert r.returncode == 1 and r.stderr.startswith("error:")  # the same folder, when it is needed, is refused


def test_engine_loads_the_model_on_first_generative_answer(kb_home: Path, tiny_model_dir: Path) -> None:
    from chatkit.retrieval.service import open_searcher

    settings = load_settings(overrides=["generation.max_new_tokens=4", "engine.abstain_threshold=0.2"])
    loads = []

    def load() -> HFGenerator:
        loads.append(1)
        return HFGenerator(str(tiny_model_dir), "float32")

    lazy = ChatEngine(settings, open_searcher(settings, Paths(kb_home), ["notes"]), load_generator=load,
                      default_adapter=lambda: "base")
    assert lazy.ask("What does LoRA freeze?", options=ChatOptions(style="extractive")).citations
    assert lazy.ask("What is the capital of Australia?", options=ChatOptions(style="generative")).abstained
    assert loads == [] and not lazy.generator_loaded and lazy.model_id == "" and lazy.adapter_name == "base"
    assert lazy.ask("Why is LoRA cheap?", options=ChatOptions(style="generative")).timings["new_tokens"] > 0
    lazy.ask("What does FAISS find?", options=ChatOptions(style="generative"))
    assert loads == [1] and lazy.generator_loaded


def test_plain_chat_skips_retrieval_and_citations(engine: ChatEngine) -> None:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What does LoRA freeze? [1]"})
    evs = list(engine.chat("What does LoRA freeze? [1]", (), ChatOptions(retrieval=False, messages=messages)))
    assert evs[0].kind == "retrieval" and evs[0].hits == () and evs[0].data["retrieval"] is False
    answer = evs[-1].answer
    streamed = "".join(e.text for e in evs if e.kind == "token").strip()
    assert answer.hits == () and answer.citations == () and answer.text == streamed
    assert answer.timings["new_tokens"] == 12 and "retrieval_s" in answer.timings
    assert evs[-1].data["prompt_ids"] == engine.generator.render(list(messages))


class DictCache:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, dict[str, float]]] = {}

    def get(self, key: str) -> tuple[str, dict[str, float]] | None:
        return self.rows.get(key)

    def put(self, key: str, text: str, stats: dict[str, float]) -> None:
        self.rows[key] = (text, stats)


def test_generation_cache_is_consulted_by_the_engine(engine: ChatEngine) -> None:
    cache = DictCache()
    first = engine.ask("Why is LoRA cheap?", options=ChatOptions(style="generative", cache=cache))
    (key,) = cache.rows
    assert "cached" not in first.timings and cache.rows[key][1]["new_tokens"] == first.timings["new_tokens"]
    cache.rows[key] = ("From the cache [1].", cache.rows[key][1])
    again = engine.ask("Why is LoRA cheap?", options=ChatOptions(style="generative", cache=cache))
    assert again.text == "From the cache [1]." and again.timings["cached"] == 1.0 and again.citations
    other = engine.ask("Why is LoRA cheap?", options=ChatOptions(style="generative", cache=cache, adapter="base",
                                                                 generation=dataclasses.replace(engine.settings.generation, seed=7, temperature=0.7)))
    assert other.text != "From the cache [1]." and len(cache.rows) == 2  # other decoding, other key


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


def test_eval_answers_go_through_the_engine_and_reuse_cached_generations(engine: ChatEngine, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from chatkit.evaluation.answers import GenerationCache, QAItem, run_answers

    monkeypatch.setattr(engine.settings.engine, "answer_style", "generative")
    items = [QAItem("q1", "Why is LoRA cheap?", "Far fewer parameters are trained.", ("notes/lora",), ("parameters",), True),
             QAItem("q2", "What is the capital of Australia?", "", (), (), False)]
    cache = GenerationCache(tmp_path / "gen.sqlite")
    first = run_answers(engine, items, cache)
    assert cache.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 1  # the abstention generated nothing
    assert first[0].retrieved_doc_ids[0] == "notes/lora" and first[0].scores["gold_doc_retrieved"] == 1.0
    assert first[0].scores["reference_nll"] is not None and first[0].scores["reference_nll"] > 0
    assert first[1].abstained and first[1].prediction == ABSTAIN_TEXT
    cache.db.execute("UPDATE generations SET text = 'Cached: fewer parameters [1].'")
    again = run_answers(engine, items, cache)
    assert again[0].prediction == "Cached: fewer parameters [1]." and again[0].cited_doc_ids == ["notes/lora"]
    assert again[0].scores["reference_nll"] == first[0].scores["reference_nll"]


def test_generative_prompt_shows_each_passages_sentences_closest_to_the_question(engine: ChatEngine) -> None:
    one = dataclasses.replace(engine.settings, engine=dataclasses.replace(engine.settings.engine, evidence_sentences=1))
    evidence_engine = ChatEngine(one, engine.searcher, engine.generator)
    prompt = engine.generator.tokenizer.decode(evidence_engine.plan("What does LoRA freeze?", (), ChatOptions(style="generative")).prompt_ids)
    assert "LoRA freezes the pre-trained weights" in prompt and "Far fewer parameters" not in prompt
    whole = dataclasses.replace(one, engine=dataclasses.replace(one.engine, evidence_sentences=0))
    prompt = engine.generator.tokenizer.decode(ChatEngine(whole, engine.searcher, engine.generator).plan(
        "What does LoRA freeze?", (), ChatOptions(style="generative")).prompt_ids)
    assert "Far fewer parameters" in prompt
