"""Answer a QA file with one model (`eval answers`) or with several on one warm base model (`eval
compare`, `eval all`); generations are cached, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chatkit.config import Paths, Settings
from chatkit.engine import ChatEngine
from chatkit.evaluation.answers import GenerationCache, ItemResult, QAItem, load_qa, report, run_answers


class AnswerProgress(Protocol):
    """What a caller sees while items are answered (the CLI draws a bar)."""

    def start(self, total: int) -> None: ...
    def model(self, name: str) -> None: ...
    def item(self, result: ItemResult) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def model(self, name: str) -> None:
        pass

    def item(self, result: ItemResult) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass(frozen=True)
class AnswersRun:
    """`eval answers`: the report (summary, meta, every item) and the folder its report.json went to."""

    report: dict[str, Any]
    folder: Path
    adapter: str
    style: str
    items: int


def with_style(settings: Settings, style: str | None) -> Settings:
    """A copy answering in `style` (None: as configured); the caller's settings stay as they were."""
    if not style:
        return settings
    return dataclasses.replace(settings, engine=dataclasses.replace(settings.engine, answer_style=style))


def generation_cache(paths: Paths) -> GenerationCache:
    return GenerationCache(paths.cache / "generations.sqlite")


def answer_models(engine: ChatEngine, items: Sequence[QAItem], names: Sequence[str], cache: GenerationCache | None,
                  progress: AnswerProgress, perplexity: bool = False) -> dict[str, list[ItemResult]]:
    """Every item with every model ('base' or an adapter), switching adapters on the warm base model."""
    results: dict[str, list[ItemResult]] = {}
    progress.start(len(items) * len(names))
    try:
        for name in names:
            engine.use_adapter(name)
            progress.model(name)
            results[name] = run_answers(engine, items, cache, None, on_item=progress.item, perplexity=perplexity)
    finally:
        progress.stop()
    return results


def answer_qa_file(settings: Settings, paths: Paths, qa: Path, collections: Sequence[str] | None, adapter: str | None,
                   style: str | None, limit: int | None, perplexity: bool, out: Path | None,
                   say: Callable[[str], None], progress: AnswerProgress) -> AnswersRun:
    """`eval answers`: answer and score a QA file with `adapter` (None: the default one) and write
    report.json into `out` (default: a new `<reports>/answers-<adapter>-<time>` folder)."""
    from chatkit.assembly import build_engine

    items = load_qa(qa)[: limit or None]  # bad files fail before any model loads
    settings = with_style(settings, style)
    engine = build_engine(settings, paths, collections, progress=say)
    if adapter is not None:
        engine.use_adapter(adapter)
    progress.start(len(items))
    try:
        results = run_answers(engine, items, generation_cache(paths), None, on_item=progress.item, perplexity=perplexity)
    finally:
        progress.stop()
    meta = {"qa": str(qa), "adapter": engine.adapter_name, "model": engine.model_id, "style": settings.engine.answer_style,
            "collections": list(collections or settings.engine.collections), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = report(results, meta)
    folder = out or paths.reports / f"answers-{engine.adapter_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(data, indent=2))
    return AnswersRun(data, folder, engine.adapter_name, settings.engine.answer_style, len(results))
