"""`eval compare`: base, the current default and each adapter answer the same QA items on one warm base
model; each adapter is compared with the current default (and with base) and gets its report folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from chatkit.config import Paths, Settings
from chatkit.evaluation.answering import AnswerProgress, answer_models, generation_cache, with_style
from chatkit.evaluation.answers import load_qa, summarize
from chatkit.evaluation.compare import Comparison, compare
from chatkit.evaluation.preflight import check_adapters, check_collections
from chatkit.evaluation.report import write_comparison


@dataclass(frozen=True)
class AdapterComparison:
    """The comparison the promotion gate reads (candidate vs the current default) and its report folder."""

    gate: Comparison
    folder: Path


def compare_adapters(settings: Settings, paths: Paths, qa: Path, adapters: Sequence[str], collections: Sequence[str] | None,
                     limit: int | None, style: str | None, say: Callable[[str], None],
                     progress: AnswerProgress) -> list[AdapterComparison]:
    from chatkit.assembly import build_engine
    from chatkit.training.registry import default_adapter

    items = load_qa(qa)[: limit or None]  # bad files fail before any model loads
    check_adapters(paths, adapters)
    check_collections(settings, paths, list(collections or settings.engine.collections))
    current = default_adapter(paths) or "base"
    names = list(dict.fromkeys(["base", current, *adapters]))
    if not style and settings.engine.answer_style == "extractive":
        # Extractive answers quote passages without the model, so every adapter would tie with base.
        say("comparing generated answers (--style generative): extractive answers do not use the adapter")
        style = "generative"
    settings = with_style(settings, style)
    engine = build_engine(settings, paths, collections, progress=say)
    results = answer_models(engine, items, names, generation_cache(paths), progress)
    meta = {"qa": str(qa), "items": len(items), "model": engine.model_id, "style": settings.engine.answer_style,
            "collections": ", ".join(collections or settings.engine.collections), "current default": current}
    written = []
    for name in adapters:
        # The gate compares against the current default; base stays in the report for reference.
        baseline = current if name != current else "base"
        gate = compare(results[baseline], results[name], baseline, name)
        others = [compare(results["base"], results[name], "base", name)] if baseline != "base" else []
        dump = {n: {"summary": summarize(results[n]), "items": [asdict(r) for r in results[n]]} for n in dict.fromkeys([baseline, "base", name])}
        written.append(AdapterComparison(gate, write_comparison(paths.reports, gate, others, meta, dump)))
    return written
