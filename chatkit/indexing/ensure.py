"""Keep a collection in step with a folder: what `ask` and `chat` call for the default collections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.indexing.pipeline import chunk_signature, make_plan, run_add
from chatkit.indexing.report import QuietReporter
from chatkit.retrieval.service import collection, load_embedder


def ensure_collection(settings: Settings, paths: Paths, name: str, folder: Path,
                      progress: Callable[[str], None] | None = None, embedder: Any = None) -> None:
    """Index or sync `folder` into collection `name` when it is missing or stale; a no-op otherwise.

    Refuses (CollectionError) a collection built with another embedder; bad files become warnings
    sent to `progress`, never exceptions. Pass `embedder` to reuse one already loaded.
    """
    say = progress or (lambda _msg: None)
    col = collection(settings, paths, name)
    try:
        embedder = embedder or load_embedder(settings)
        if col.exists:
            col.check_embedder(embedder.key)
        plan = make_plan(col, [folder], None, chunk_signature(settings))
        stale = plan.missing or any(f.state != "unchanged" for f in plan.files)
        if col.exists and not stale and col.index_files_fresh():
            return
        todo = sum(1 for f in plan.files if f.state != "unchanged")
        say(f"indexing {folder} into collection '{name}' ({todo} new or changed files)...")
        summary = run_add(settings, paths, col, embedder, [folder], reporter=QuietReporter(say), remove_missing=True, say=say)
        say(summary.line())
    finally:
        col.close()
