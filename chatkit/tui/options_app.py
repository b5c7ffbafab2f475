"""The palette's settings (adapter, collection, retrieval mode, k) and the index (add a folder, stats).

Switches that load weights or open indexes run in worker threads and report back with SettingChanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work

from chatkit.engine import ChatEngine
from chatkit.errors import ChatkitError
from chatkit.tui.conversations_app import ConversationsApp
from chatkit.tui.messages import SettingChanged
from chatkit.tui.widgets.index_progress import IndexProgress
from chatkit.tui.widgets.status import StatusBar


class OptionsApp(ConversationsApp):
    # --- settings from the palette ---------------------------------------------------------------

    @property
    def switching(self) -> bool:
        """An adapter or collection switch is running; the engine must not answer meanwhile."""
        return any(w.group == "switch" and not w.is_finished for w in self.workers)

    def _ready_for_switch(self) -> ChatEngine | None:
        if self.session.engine is None:
            self.notify("the model is still loading", severity="warning")
        elif self.generating:
            self.notify("wait for this answer, or press esc to stop it", severity="warning")
        return self.session.engine if not self.generating else None

    def switch_adapter(self, name: str) -> None:
        engine = self._ready_for_switch()
        if engine is not None:
            self.query_one(StatusBar).busy = f"loading adapter {name}"
            self.run_switch("adapter", name, lambda: engine.use_adapter(name))

    def switch_collections(self, names: list[str]) -> None:
        engine = self._ready_for_switch()
        if engine is None:
            return

        def reopen() -> None:
            engine.searcher = self.knowledge.open_searcher(names, getattr(engine.searcher, "embedder", None))

        self.query_one(StatusBar).busy = "opening collection"
        self.run_switch("collection", "+".join(names), reopen)

    @work(thread=True, exit_on_error=False, group="switch")
    def run_switch(self, what: str, value: str, do: Callable[[], None]) -> None:
        try:
            do()
        except ChatkitError as exc:
            self.post_message(SettingChanged(what, value, exc.message + (f" (hint: {exc.hint})" if exc.hint else "")))
            return
        except Exception as exc:
            self.post_message(SettingChanged(what, value, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(SettingChanged(what, value))

    def on_setting_changed(self, message: SettingChanged) -> None:
        status = self.query_one(StatusBar)
        status.busy = ""
        if message.error:
            self.notify(message.error, title=f"cannot switch {message.what}", severity="error")
            return
        if message.what == "adapter" and self.session.engine is not None:
            status.adapter = self.session.engine.adapter_name
        elif message.what == "collection":
            self.collections = message.value.split("+")
            status.collections = message.value
            self.state.collections = self.collections
        self.notify(f"{message.what}: {message.value}")

    def set_mode(self, mode: str) -> None:
        self.mode = self.state.mode = mode
        self.query_one(StatusBar).mode = mode

    def set_k(self, k: int) -> None:
        self.k = self.state.k = k
        self.query_one(StatusBar).k = k

    # --- index ----------------------------------------------------------------------------------

    def action_add_folder(self) -> None:
        from chatkit.tui.screens.indexing import AddFolderPrompt

        def start(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self.query_one(IndexProgress).begin(*answer)
                self.index_folder(Path(answer[0]).expanduser(), answer[1])

        self.push_screen(AddFolderPrompt(self.collections[0] if self.collections else "docs"), start)

    @work(thread=True, exit_on_error=False, exclusive=True, group="index")
    def index_folder(self, folder: Path, name: str) -> None:
        from chatkit.tui.knowledge import ProgressReporter

        progress = self.query_one(IndexProgress)
        reporter = ProgressReporter(lambda stage, done, total: self.call_from_thread(progress.advance, stage, done, total),
                                    lambda text: self.call_from_thread(self.notify, text, severity="warning"))
        engine = self.session.engine
        try:
            summary = self.knowledge.add_folder(folder, name, reporter, getattr(getattr(engine, "searcher", None), "embedder", None))
        except ChatkitError as exc:
            message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            self.call_from_thread(self.notify, message, title="indexing failed", severity="error", timeout=20)
        except Exception as exc:
            self.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="indexing failed", severity="error")
        else:
            self.call_from_thread(self.notify, summary, title="indexed", timeout=15)
            if engine is not None and name in self.collections and not self.generating:
                self.call_from_thread(self.switch_collections, list(self.collections))  # so new passages are searched
        finally:
            self.call_from_thread(progress.end)

    def action_index_stats(self) -> None:
        from chatkit.tui.screens.stats import StatsScreen

        try:
            stats = self.knowledge.stats()
        except ChatkitError as exc:
            self.notify(exc.message, severity="error")
            return
        except Exception as exc:
            self.notify(f"no index stats: {exc}", severity="error")
            return
        self.push_screen(StatsScreen(stats, self.collections))
