"""Start the app the way `chatkit chat` does: the engine is built by chatkit.assembly in a worker."""

from __future__ import annotations

from collections.abc import Callable

from chatkit.config import Paths, Settings
from chatkit.engine import ChatEngine
from chatkit.errors import CollectionError


def engine_loader(settings: Settings, paths: Paths, collections: list[str] | None, adapter: str | None,
                  remembered: list[str] | None = None) -> Callable[[Callable[[str], None]], ChatEngine]:
    """Collections: those asked for, else the ones chosen in the last session, else the config's."""

    def load(progress: Callable[[str], None]) -> ChatEngine:
        from chatkit.assembly import build_engine

        engine = None
        if remembered and not collections:
            try:
                engine = build_engine(settings, paths, remembered, progress)
            except CollectionError as exc:  # dropped since; fall back rather than refuse to start
                progress(f"{exc.message}; searching {', '.join(settings.engine.collections)} instead")
        if engine is None:
            engine = build_engine(settings, paths, collections, progress)
        if adapter is not None:
            engine.use_adapter(adapter)
        if engine.needs_generator():
            engine.generator  # noqa: B018 - load it here, behind the loading screen, not on the first question
        return engine

    return load


def run_chat(settings: Settings, paths: Paths, *, collections: list[str] | None = None, adapter: str | None = None,
             k: int | None = None, mode: str | None = None, conversation: int | None = None, new: bool = False) -> int:
    from chatkit.tui.app import ChatApp, state_file
    from chatkit.tui.state import UIState

    remembered = UIState.load(state_file(paths)).collections
    app = ChatApp(settings, paths, engine_loader=engine_loader(settings, paths, collections, adapter, remembered),
                  collections=collections, conversation=conversation, new=new, k=k, mode=mode)
    app.run()
    return 0
