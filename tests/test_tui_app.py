"""The chat app driven through Textual's Pilot with a tiny real engine: a real collection, the real
embedder, a tiny real Llama. Each test reads what the user would see and what the store kept."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from chatkit.conversations import ConversationStore
from chatkit.errors import ModelError
from chatkit.tui.widgets.answer import AnswerView
from chatkit.tui.widgets.sidebar import ConversationItem
from chatkit.tui.widgets.sources import SourcesPane
from chatkit.tui.widgets.status import StatusBar
from tests.test_tui_fixtures import ask, make_adapter, make_app, sync, wait_until, write_docs

pytest_plugins = ["tests.test_tui_fixtures"]  # the shared fixtures: tui_kb, chat_paths, tiny_engine

QUESTION = "What is LoRA and why is it cheaper?"


@sync
async def test_ask_stream_store_open_sources_rate_and_comment(chat_paths: Any, tiny_engine: Any) -> None:
    from textual.widgets import Markdown

    tiny_engine.settings.engine.answer_style = "auto"  # streamed token by token, then the cited fallback
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await ask(pilot, app, QUESTION, typed=True)
        assert view.tokens_seen >= 2  # tokens reached the view one by one, before the final answer
        record = view.record
        assert record.complete and record.answer and record.hits[0].chunk.title == "LoRA"
        status = app.query_one(StatusBar)
        assert status.retrieval_ms > 0 and status.model == "tiny-llama"
        assert "LoRA" in str(view.meta.content)  # the sources line under the answer

        # Keyboard: shift+tab reaches the answer, 1 opens its first passage with the question's words marked.
        await pilot.press("shift+tab")
        assert app.focused is view
        await pilot.press("1")
        pane = app.query_one(SourcesPane)
        assert pane.display
        text = pane.shown_text
        assert text.startswith("[1] LoRA") and "lora.md" in text and "How it works" in text
        content = pane.query_one("#passage").content
        marked = {content.plain[s.start:s.end] for s in content.spans if "reverse" in str(s.style)}
        assert {"LoRA", "cheaper"} <= marked and "the" not in marked

        # Mouse: the answer's [n] are links to the passages.
        assert "(cite:1)" in view.body.source
        view.body.post_message(Markdown.LinkClicked(view.body, "cite:2"))
        await pilot.pause()
        assert pane.shown_text.startswith("[2] ")

        # Feedback: a comment needs a rating first; + rates, c comments.
        view.focus()
        await pilot.press("c")
        assert len(app.screen_stack) == 1
        await pilot.press("plus", "c")
        await wait_until(pilot, lambda: len(app.screen_stack) == 2)
        await pilot.press(*"clear and cited", "enter")
        await wait_until(pilot, lambda: view.record.comment == "clear and cited")
        assert "+1" in str(view.meta.content)
        await pilot.press("escape", "escape")
        assert not pane.display
    store = ConversationStore(chat_paths.conversations_db)
    (info,) = store.list_conversations()
    (turn,) = store.turns(info.id)
    assert info.title == QUESTION and turn.question == QUESTION and turn.answer == record.answer
    assert turn.complete and turn.model == "tiny-llama" and turn.adapter == "base"
    assert turn.passages[0]["title"] == "LoRA" and "retrieval_s" in turn.timings
    assert turn.rating == 1 and turn.comment == "clear and cited"
    assert len(store.export_rows("good")) == 1


@sync
async def test_switch_adapter_from_the_palette(chat_paths: Any, tiny_engine: Any, tiny_model_dir: Path) -> None:
    from chatkit.engine import ChatEngine
    from chatkit.generation.hf import HFGenerator

    make_adapter(tiny_model_dir, chat_paths.adapters / "tutor")
    # Its own generator: loading an adapter wraps the model, which must not leak into other tests.
    generator = HFGenerator(str(tiny_model_dir), "float32")
    engine = ChatEngine(tiny_engine.settings, tiny_engine.searcher, generator, adapters_dir=chat_paths.adapters)
    app = make_app(chat_paths, engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.session.engine is not None)
        await pilot.press("ctrl+p")
        await pilot.press(*"Adapter: tutor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one(StatusBar).adapter == "tutor")
        assert engine.adapter_name == "tutor"
        await ask(pilot, app, QUESTION)
    store = ConversationStore(chat_paths.conversations_db)
    (turn,) = store.turns(store.list_conversations()[0].id)
    assert turn.adapter == "tutor"


@sync
async def test_escape_stops_the_answer_and_keeps_it_marked(chat_paths: Any, tiny_engine: Any) -> None:
    # Long enough that the quit lands mid-answer even on a fast, idle machine (the tiny model is quick).
    tiny_engine.settings.generation.max_new_tokens = 1500
    tiny_engine.settings.engine.answer_style = "generative"
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.session.engine is not None)
        app.query_one("#prompt").insert(QUESTION)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.generating and app.query(AnswerView).last().stream is None)
        view = app.query(AnswerView).last()
        assert not view.record.complete and "-partial" in view.classes
        assert "stopped: partial answer" in view.body.source
    store = ConversationStore(chat_paths.conversations_db)
    (turn,) = store.turns(store.list_conversations()[0].id)
    assert not turn.complete and turn.answer == view.record.answer
    assert len(turn.answer.split()) < 400  # it stopped early


@sync
async def test_off_topic_question_shows_not_in_my_documents(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await ask(pilot, app, "What is the capital of Australia?")
        assert view.record.abstained and "-abstained" in view.classes
        assert view.banner.display and "documents don't cover" in view.body.source
        await pilot.press("ctrl+o")
        assert str(app.query_one("#sources-title").content) == "Closest sources (not used)"


def seed_conversation(paths: Any, question: str = QUESTION, answer: str = "LoRA trains small matrices [1].") -> int:
    store = ConversationStore(paths.conversations_db)
    conv = store.new_conversation()
    turn = store.start_turn(conv, question, model="tiny-llama", adapter="base")
    store.finish_turn(turn, answer)
    store.close()
    return conv


@sync
async def test_new_conversation_and_switching_in_the_sidebar(chat_paths: Any, tiny_engine: Any) -> None:
    first = seed_conversation(chat_paths)
    app = make_app(chat_paths, tiny_engine, conversation=first)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.session.conversation_id == first and len(app.query(AnswerView)) == 1
        await pilot.press("ctrl+n")
        assert not app.query(AnswerView) and app.session.conversation_id is None
        await ask(pilot, app, "How does FAISS find neighbours?")
        assert app.session.conversation_id != first
        items = list(app.query(ConversationItem))
        assert [i.info.title for i in items] == ["How does FAISS find neighbours?", QUESTION]
        # Back to the first conversation through the sidebar: its turn is shown again.
        app.query_one("#conv-list").focus()
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.session.conversation_id == first)
        assert [v.record.question for v in app.query(AnswerView)] == [QUESTION]


@sync
async def test_rename_search_and_delete_in_the_sidebar(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine, conversation=seed_conversation(chat_paths))
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#conv-list").focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: len(app.screen_stack) == 2)
        await pilot.press("ctrl+u", *"LoRA notes", "enter")
        await wait_until(pilot, lambda: [i.info.title for i in app.query(ConversationItem)] == ["LoRA notes"])
        await pilot.press("ctrl+f", *"zzz")
        await wait_until(pilot, lambda: not app.query(ConversationItem))
        await pilot.press("ctrl+u", *"cheaper")  # search looks inside the turns too
        await wait_until(pilot, lambda: len(app.query(ConversationItem)) == 1)
        app.query_one("#conv-list").focus()
        await pilot.press("d")
        await wait_until(pilot, lambda: len(app.screen_stack) == 2)
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.query(ConversationItem))
        assert not app.query(AnswerView) and app.session.conversation_id is None
    assert ConversationStore(chat_paths.conversations_db).list_conversations() == []


@sync
async def test_quit_and_resume_where_the_user_left_off(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, app, QUESTION)
        await pilot.press(*"an unsent draft")
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)
    again = make_app(chat_paths, tiny_engine)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert [v.record.question for v in again.query(AnswerView)] == [QUESTION]
        prompt = again.query_one("#prompt")
        assert prompt.text == "an unsent draft"
        await pilot.press("ctrl+u", "up")  # the question history survives too
        assert prompt.text == QUESTION
        await pilot.press("down")
        assert prompt.text == ""


@sync
async def test_quit_while_answering_stores_the_partial_answer(chat_paths: Any, tiny_engine: Any) -> None:
    # Long enough that the quit lands mid-answer even on a fast, idle machine (the tiny model is quick).
    tiny_engine.settings.generation.max_new_tokens = 1500
    tiny_engine.settings.engine.answer_style = "generative"
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.session.engine is not None)
        app.query_one("#prompt").insert(QUESTION)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.generating and app.query(AnswerView).last().tokens_seen >= 3)
        shown = app.query(AnswerView).last().record
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not app.is_running)
    store = ConversationStore(chat_paths.conversations_db)
    (turn,) = store.turns(store.list_conversations()[0].id)
    assert turn.question == QUESTION and not turn.complete
    assert turn.answer and turn.answer == shown.answer  # the text already on screen is kept


@sync
async def test_model_loads_in_a_worker_and_a_question_waits_for_it(chat_paths: Any, tiny_engine: Any) -> None:
    release = threading.Event()

    def loader(progress: Any) -> Any:
        progress("converting the model…")
        release.wait(10)
        return tiny_engine

    app = make_app(chat_paths, None, engine_loader=loader)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "converting" in str(app.query_one("#loading-text").content))
        assert app.query_one("#loading").display and app.query_one(StatusBar).busy == "loading model"
        app.query_one("#prompt").insert(QUESTION)
        await pilot.press("enter")  # the UI answers keys while the model loads
        assert app.pending == QUESTION
        release.set()
        await wait_until(pilot, lambda: bool(app.query(AnswerView)) and not app.generating
                         and app.query(AnswerView).last().stream is None)
        assert not app.query_one("#loading").display and app.query(AnswerView).last().record.answer


@sync
async def test_a_model_that_fails_to_load_is_a_notification(chat_paths: Any) -> None:
    def loader(progress: Any) -> Any:
        raise ModelError("cannot load dialogue model from /nowhere", "check models.dialogue")

    app = make_app(chat_paths, None, engine_loader=loader)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(app.load_error))
        assert any("cannot load dialogue model" in n.message for n in app._notifications)
        await pilot.press(*"hello", "enter")
        assert app.is_running and app.query_one("#prompt").text == "hello"


@sync
async def test_palette_sets_mode_k_and_collection(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.session.engine is not None)
        for command in ("mode: bm25", "k=2", "Collection: extra"):
            await pilot.press("ctrl+p", *command)
            await pilot.pause(0.3)
            await pilot.press("enter")
        await wait_until(pilot, lambda: app.collections == ["extra"])
        status = app.query_one(StatusBar)
        assert (app.mode, app.k, status.mode, status.k, status.collections) == ("bm25", 2, "bm25", 2, "extra")
        view = await ask(pilot, app, "What is perplexity?")
        assert [h.chunk.title for h in view.record.hits] == ["Perplexity"]


@sync
async def test_add_a_folder_with_progress_and_see_index_stats(chat_paths: Any, tiny_engine: Any, tmp_path: Path) -> None:
    from chatkit.tui.widgets.index_progress import IndexProgress

    folder = write_docs(tmp_path / "new-docs", {"qlora.md": "# QLoRA\n\nQLoRA trains LoRA adapters on a 4-bit base.\n"})
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.session.engine is not None)
        app.action_add_folder()
        await wait_until(pilot, lambda: len(app.screen_stack) == 2)
        app.screen.query_one("#index-path").value = str(folder)
        await pilot.press("tab", "ctrl+u", *"fresh", "enter")
        progress = app.query_one(IndexProgress)
        await wait_until(pilot, lambda: "fresh" in app.knowledge.collections() and not progress.display)
        assert progress.stages["parse"] == (1, 1) and progress.stages["embed"][0] == 1  # what the bar showed
        assert any("1 added" in n.message for n in app._notifications)
        app.action_index_stats()
        await wait_until(pilot, lambda: len(app.screen_stack) == 2)
        rows = {r[0]: r for r in (app.screen.query_one("DataTable").get_row_at(i) for i in range(3))}
        assert set(rows) == {"notes", "extra", "fresh"} and rows["fresh"][1] == "1"


@sync
async def test_help_theme_and_layout_at_80x24(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        assert not app.query_one("#sidebar").display  # narrow: the chat gets the width
        await pilot.press("f1")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark is not dark
        await pilot.press("ctrl+b")
        assert app.query_one("#sidebar").display
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.query_one("#sidebar").display and app.current_theme.dark is not dark  # the theme was kept


@sync
async def test_prompt_is_multiline_and_recalls_history(chat_paths: Any, tiny_engine: Any) -> None:
    app = make_app(chat_paths, tiny_engine)
    async with app.run_test(size=(80, 24)) as pilot:
        prompt = app.query_one("#prompt")
        await pilot.press(*"first line", "ctrl+j", *"second line")
        assert prompt.text == "first line\nsecond line"
        prompt.load_text("")
        prompt.set_asked(["older question", "newer question"])
        await pilot.press("up")
        assert prompt.text == "newer question"
        await pilot.press("up")
        assert prompt.text == "older question"
        await pilot.press("down", "down")
        assert prompt.text == ""
