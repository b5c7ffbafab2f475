"""ChatApp: the layout, the keys, and the flow of a question through a worker thread.

The engine is passed in (or a loader that builds it in a worker), so tests drive the real app with a
tiny real engine. Workers talk back only through messages; the UI thread owns every widget."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, LoadingIndicator
from textual.worker import Worker

from chatkit.config import Paths, Settings
from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import ChatkitError
from chatkit.tui.answers_app import WIDE, AnswersApp
from chatkit.tui.commands import chat_commands
from chatkit.tui.knowledge import Knowledge
from chatkit.tui.messages import (
    AnswerDone,
    AnswerFailed,
    EngineEvent,
    EngineFailed,
    EngineReady,
    LoadProgress,
)
from chatkit.tui.screens.help import HelpScreen
from chatkit.tui.session import ChatSession, TurnRecord
from chatkit.tui.state import UIState
from chatkit.tui.widgets.answer import AnswerView
from chatkit.tui.widgets.chat_log import ChatLog
from chatkit.tui.widgets.index_progress import IndexProgress
from chatkit.tui.widgets.prompt import PromptInput
from chatkit.tui.widgets.sidebar import Sidebar
from chatkit.tui.widgets.sources import SourcesPane
from chatkit.tui.widgets.status import StatusBar

EngineLoader = Callable[[Callable[[str], None]], ChatEngine]


def state_file(paths: Paths) -> Path:
    return paths.cache / "chat_state.json"


class ChatApp(AnswersApp):
    CSS_PATH = "chat.tcss"
    TITLE = "chatkit"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("escape", "stop", "Stop/back"),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+b", "toggle_sidebar", "Chats"),
        Binding("ctrl+o", "toggle_sources", "Sources"),
        Binding("ctrl+f", "search_conversations", "Search", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("f1", "help", "Help"),
    ]

    def __init__(self, settings: Settings, paths: Paths, *, engine: ChatEngine | None = None,
                 engine_loader: EngineLoader | None = None, knowledge: Knowledge | None = None,
                 collections: list[str] | None = None, conversation: int | None = None, new: bool = False,
                 k: int | None = None, mode: str | None = None, state_path: Path | None = None) -> None:
        super().__init__()
        self.settings, self.paths = settings, paths
        self.store = ConversationStore(paths.conversations_db)
        self.session = ChatSession(self.store)
        self.knowledge = knowledge or Knowledge(settings, paths)
        self.state_path = state_path or state_file(paths)
        self.state = UIState.load(self.state_path)
        self.collections = list(collections or self.state.collections or settings.engine.collections)
        self.mode = mode or self.state.mode or settings.retrieval.mode
        self.k = k or self.state.k or settings.engine.passages
        self._engine, self._loader = engine, engine_loader
        self._resume = None if new else (conversation or self.state.conversation_id)
        self.cancel: threading.Event | None = None
        self.answer_worker: Worker[None] | None = None
        self.pending: str | None = None
        self.load_error = ""
        self.quitting = False

    # --- layout ---------------------------------------------------------------------------------

    def compose(self):  # type: ignore[no-untyped-def]
        with Horizontal(id="main"):
            yield Sidebar(id="sidebar")
            with Vertical(id="chat"):
                yield ChatLog(id="log")
                with Horizontal(id="loading"):
                    yield LoadingIndicator()
                    yield Label("loading the model…", id="loading-text")
                yield PromptInput(self.state.prompt_history, id="prompt")
            yield SourcesPane(id="sources")
        yield IndexProgress(id="index-progress")
        yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.theme = self.state.theme if self.state.theme in self.available_themes else "textual-dark"
        self.theme_changed_signal.subscribe(self, lambda _theme: self.save_state())
        self.query_one(SourcesPane).display = False
        self.query_one(IndexProgress).display = False
        self.query_one(Sidebar).display = self.size.width >= WIDE
        status = self.query_one(StatusBar)
        status.collections, status.mode, status.k = "+".join(self.collections), self.mode, self.k
        await self.resume(self._resume)
        prompt = self.query_one(PromptInput)
        prompt.load_text(self.state.draft)
        prompt.move_cursor(prompt.document.end)
        prompt.focus()
        if self._engine is not None:
            self.post_message(EngineReady(self._engine))
        elif self._loader is not None:
            status.busy = "loading model"
            self.load_engine(self._loader)

    # --- the engine -----------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="load")
    def load_engine(self, loader: EngineLoader) -> None:
        try:
            engine = loader(self.say_loading)
        except ChatkitError as exc:
            self.post_message(EngineFailed(exc.message, exc.hint))
            return
        except Exception as exc:  # a crash while loading must reach the user as a message, not a traceback
            self.post_message(EngineFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(EngineReady(engine))

    def say_loading(self, text: str) -> None:
        """The loader's progress callback; runs in the worker thread."""
        self.post_message(LoadProgress(text))

    def on_load_progress(self, message: LoadProgress) -> None:
        self.query_one("#loading-text", Label).update(message.text[:200])

    async def on_engine_ready(self, message: EngineReady) -> None:
        engine: ChatEngine = message.engine
        self.session.engine = engine
        self.query_one("#loading").display = False
        status = self.query_one(StatusBar)
        status.model = engine.model_id or "–"  # extractive answers never load the dialogue model
        status.adapter, status.busy = engine.adapter_name, ""
        searched = [getattr(c, "name", "") for c in getattr(engine.searcher, "collections", [])]
        if searched and all(searched):  # what the engine really searches, whatever was remembered
            self.collections = searched
            status.collections = "+".join(searched)
        if self.pending:
            question, self.pending = self.pending, None
            await self.send(question)

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.load_error = message.message + (f" (hint: {message.hint})" if message.hint else "")
        self.query_one("#loading").display = False
        self.query_one(StatusBar).busy = "no model"
        self.notify(self.load_error, title="cannot start the engine", severity="error", timeout=30)

    # --- asking ---------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self.answer_worker is not None and not self.answer_worker.is_finished

    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        self.state.prompt_history = self.query_one(PromptInput).asked
        if self.generating:
            self.query_one(PromptInput).load_text(message.text)
            self.notify("wait for this answer, or press esc to stop it", severity="warning")
        elif self.session.engine is None and self.load_error:
            self.query_one(PromptInput).load_text(message.text)
            self.notify(self.load_error, title="no engine", severity="error")
        elif self.switching:
            self.query_one(PromptInput).load_text(message.text)
            self.notify("wait a moment: switching adapter or collection", severity="warning")
        elif self.session.engine is None:
            self.pending = message.text
            self.notify("the model is still loading; your question goes out as soon as it is ready")
        else:
            await self.send(message.text)

    async def send(self, question: str) -> None:
        record = TurnRecord(question)
        view = await self.query_one(ChatLog).add_turn(record)
        self.cancel = threading.Event()
        self.query_one(StatusBar).busy = "answering"
        options = ChatOptions(k=self.k, mode=self.mode, cancel=self.cancel)
        self.answer_worker = self.answer(record, view, options)

    @work(thread=True, exit_on_error=False, group="answer")
    def answer(self, record: TurnRecord, view: AnswerView, options: ChatOptions) -> None:
        try:
            for event in self.session.ask(record, options):
                self.post_message(EngineEvent(view, event))
        except ChatkitError as exc:
            self.post_message(AnswerFailed(view, exc.message, exc.hint))
        except Exception as exc:  # keep the app alive; the session already stored the partial turn
            self.post_message(AnswerFailed(view, f"{type(exc).__name__}: {exc}"))
        finally:
            self.post_message(AnswerDone(view))

    async def on_engine_event(self, message: EngineEvent) -> None:
        event, view = message.event, message.view
        status = self.query_one(StatusBar)
        if event.kind == "token":
            await view.write(event.text)
        elif event.kind == "retrieval":
            status.retrieval_ms = float(event.data.get("seconds", 0.0)) * 1000
            view.show_retrieval()
        elif event.kind == "progress":
            self.notify(event.text, severity="warning")
        elif event.kind == "error":
            self.notify(event.text, title="generation failed", severity="error")
        elif event.kind == "answer" and event.answer is not None:
            status.tokens_per_s = event.answer.timings.get("tokens_per_s", status.tokens_per_s)
            await view.finish()
            sources = self.query_one(SourcesPane)
            if sources.display:
                sources.show(view.record, view.record.cited[0] if view.record.cited else 1)

    def on_answer_failed(self, message: AnswerFailed) -> None:
        hint = f" (hint: {message.hint})" if message.hint else ""
        self.notify(message.message + hint, title="no answer", severity="error")

    async def on_answer_done(self, message: AnswerDone) -> None:
        if self.quitting:  # the DOM is going away; the session already stored the turn
            return
        if message.view.stream is not None or "-streaming" in message.view.classes:
            await message.view.finish()
        self.query_one(StatusBar).busy = ""
        self.cancel = None
        self.state.conversation_id = self.session.conversation_id
        self.save_state()
        await self.refresh_sidebar()

    def action_stop(self) -> None:
        if self.generating and self.cancel is not None:
            self.cancel.set()
            self.query_one(StatusBar).busy = "stopping"
        elif self.query_one(SourcesPane).display:
            self.query_one(SourcesPane).display = False
            self.query_one(PromptInput).focus()
        else:
            self.query_one(PromptInput).focus()

    # --- app ------------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from chat_commands(self)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display
        if sidebar.display and self.size.width < WIDE:
            self.query_one(SourcesPane).display = False

    def action_search_conversations(self) -> None:
        self.query_one(Sidebar).display = True
        self.query_one("#conv-search", Input).focus()

    def save_state(self) -> None:
        self.state.theme = self.theme
        self.state.draft = self.query_one(PromptInput).text
        self.state.conversation_id = self.session.conversation_id
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            self.notify(f"cannot save the chat state: {exc.strerror}", severity="warning")

    async def action_quit(self) -> None:
        """Stop a running answer, let the worker store it (marked partial), then leave."""
        self.quitting = True
        if self.generating and self.cancel is not None and self.answer_worker is not None:
            self.cancel.set()
            with contextlib.suppress(Exception):  # the worker's own error is already stored and reported
                await asyncio.wait_for(self.answer_worker.wait(), timeout=30)
        self.save_state()
        self.exit()

    def on_unmount(self) -> None:
        self.store.close()
