"""Shared pieces of the chat-app tests (no tests here): a real small collection built with the
knowledge-base API, the tiny real Llama from conftest, a real PEFT adapter for it, and helpers that wait
for the app's workers."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chatkit.config import Paths, Settings

DOCS = {
    "lora.md": "# LoRA\n\n## How it works\n\nLoRA freezes the pre-trained weights and learns two small low-rank "
               "matrices per layer. It is cheaper than full fine-tuning because far fewer parameters are trained.\n",
    "faiss.md": "# FAISS\n\nFAISS stores dense vectors and finds nearest neighbours quickly. It supports flat and "
                "HNSW indexes.\n",
    "bm25.md": "# BM25\n\nBM25 ranks documents by term frequency and inverse document frequency.\n",
}
EXTRA_DOCS = {"perplexity.md": "# Perplexity\n\nPerplexity is the exponential of the average negative "
                               "log-likelihood per token.\n"}


def sync(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async Pilot test on its own event loop (no async pytest plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def tui_settings() -> Settings:
    settings = Settings()
    settings.engine.collections = ["notes"]
    settings.generation.max_new_tokens = 12  # the tiny model's words are noise; a few show streaming
    return settings



@dataclass
class KnowledgeBase:
    home: Path
    searcher: Any
    embedder: Any


@pytest.fixture(scope="session")
def tui_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """Collections 'notes' and 'extra' built once with the real embedder, plus a LoRA adapter 'tutor'."""
    from chatkit.tui.knowledge import Knowledge, ProgressReporter

    home = tmp_path_factory.mktemp("kb")
    paths = Paths(home).ensure()
    knowledge = Knowledge(tui_settings(), paths)
    quiet = ProgressReporter(lambda *_: None, lambda _m: None)
    knowledge.add_folder(write_docs(home / "docs", DOCS), "notes", quiet)
    knowledge.add_folder(write_docs(home / "extra-docs", EXTRA_DOCS), "extra", quiet)
    searcher = knowledge.open_searcher(["notes"])
    return KnowledgeBase(home, searcher, searcher.embedder)


def make_adapter(model_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(str(out))
    # What the adapter registry writes beside the PEFT files; without it the registry lists it as broken.
    (out / "chatkit-adapter.json").write_text(json.dumps({"base_model": str(model_dir)}), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir: Path) -> Any:
    from chatkit.generation.hf import HFGenerator

    gen = HFGenerator(str(tiny_model_dir), "float32")
    gen.model_id = "tiny-llama"
    return gen


@pytest.fixture
def chat_paths(tmp_path: Path, tui_kb: KnowledgeBase) -> Paths:
    """A fresh data dir per test (conversations, UI state) sharing the session's collections."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "collections").symlink_to(tui_kb.home / "collections", target_is_directory=True)
    return Paths(home).ensure()


@pytest.fixture
def tiny_engine(tiny_generator: Any, tui_kb: KnowledgeBase, chat_paths: Paths) -> Any:
    from chatkit.engine import ChatEngine

    tiny_generator.set_adapter(None)
    return ChatEngine(tui_settings(), tui_kb.searcher, tiny_generator, adapters_dir=chat_paths.adapters)


def make_app(paths: Paths, engine: Any = None, **kwargs: object) -> Any:
    from chatkit.tui.app import ChatApp

    settings = engine.settings if engine is not None else tui_settings()
    return ChatApp(settings, paths, engine=engine, **kwargs)


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


async def ask(pilot: Any, app: Any, question: str, typed: bool = False) -> Any:
    """Put a question in the input (key by key when `typed`: slow, each key waits for a refresh), send
    it with enter, wait for the answer to finish; returns its AnswerView."""
    from chatkit.tui.widgets.answer import AnswerView
    from chatkit.tui.widgets.prompt import PromptInput

    await wait_until(pilot, lambda: app.session.engine is not None)
    before = len(app.query(AnswerView))
    if typed:
        await pilot.press(*question)
    else:
        app.query_one(PromptInput).insert(question)
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(app.query(AnswerView)) > before and not app.generating
                     and app.query(AnswerView).last().stream is None)
    await asyncio.sleep(0)
    return app.query(AnswerView).last()
