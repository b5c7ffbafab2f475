"""What the command palette (ctrl+p) offers beyond Textual's own commands."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from chatkit.tui.adapters import default_adapter, list_adapters

if TYPE_CHECKING:
    from chatkit.tui.app import ChatApp

MODES = {"hybrid": "BM25 and dense ranks fused", "dense": "embedding similarity only", "bm25": "keyword match only"}


def chat_commands(app: ChatApp) -> Iterable[SystemCommand]:
    engine = app.session.engine
    current = engine.adapter_name if engine is not None else ""
    promoted = default_adapter(app.paths)
    for name in list_adapters(app.paths):
        mark = (" (promoted)" if name == promoted else "") + (" (current)" if name == current else "")
        yield SystemCommand(f"Adapter: {name}", f"answer with {'no adapter' if name == 'base' else name}{mark}",
                            partial(app.switch_adapter, name))
    try:
        collections = app.knowledge.collections()
    except Exception:  # the knowledge base may be missing or unreadable; the rest of the palette still works
        collections = []
    for name in collections:
        mark = " (current)" if app.collections == [name] else ""
        yield SystemCommand(f"Collection: {name}", f"search only '{name}'{mark}", partial(app.switch_collections, [name]))
    if len(collections) > 1:
        yield SystemCommand("Collection: all", f"search {', '.join(collections)}", partial(app.switch_collections, collections))
    for mode, text in MODES.items():
        mark = " (current)" if mode == app.mode else ""
        yield SystemCommand(f"Retrieval mode: {mode}", text + mark, partial(app.set_mode, mode))
    for k in range(1, 9):
        mark = " (current)" if k == app.k else ""
        yield SystemCommand(f"Passages k={k}", f"give the model {k} passages{mark}", partial(app.set_k, k), discover=False)
    yield SystemCommand("Add a folder to the index", "parse, chunk and embed a folder into a collection", app.action_add_folder)
    yield SystemCommand("Index stats", "documents, chunks and size of each collection", app.action_index_stats)
    yield SystemCommand("New conversation", "start over (ctrl+n)", app.action_new_conversation)
    yield SystemCommand("Rename conversation", "give the open conversation a title", app.action_rename_conversation)
    yield SystemCommand("Delete conversation", "delete the open conversation", app.action_delete_conversation)
    yield SystemCommand("Rate last answer +1", "a good answer (kept for training)", partial(app.rate_last, 1))
    yield SystemCommand("Rate last answer -1", "a bad answer", partial(app.rate_last, -1))
    yield SystemCommand("Comment on last answer", "say what was good or wrong", app.comment_last)
    yield SystemCommand("Sources", "show or hide the sources pane (ctrl+o)", app.action_toggle_sources)
    yield SystemCommand("Help", "every key (f1)", app.action_help)
