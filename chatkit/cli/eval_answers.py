"""`chatkit eval answers` and `chatkit eval calibrate`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chatkit.evaluation.answers import GenerationCache, load_qa, report, run_answers

SHOWN = ("token_f1", "exact_match", "rouge_l", "bleu", "keyword_recall", "citation_precision", "citation_recall",
         "groundedness", "retrieval_recall", "reference_perplexity", "abstention_precision", "abstention_recall",
         "abstention_accuracy", "latency_p50_s", "latency_p95_s")


def run(ctx: Any, args: Any) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from chatkit.runtime import build_engine

    items = load_qa(Path(args.qa))  # bad files fail before any model loads
    if args.limit:
        items = items[: args.limit]
    settings = ctx.settings
    if args.style:
        settings.engine.answer_style = args.style
    engine = build_engine(settings, ctx.paths, args.collection, progress=ctx.say)
    if args.adapter is not None:
        engine.use_adapter(args.adapter)
    cache = GenerationCache(ctx.paths.cache / "generations.sqlite")
    columns = (TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    results = []
    with Progress(*columns, console=ctx.err_console, transient=True) as bar:
        task = bar.add_task("qa", total=len(items), last="")
        try:
            results = run_answers(engine, items, cache, None, perplexity=not args.no_perplexity,
                                  on_item=lambda r: bar.update(task, advance=1, last=r.id))
        except KeyboardInterrupt:
            ctx.say("interrupted: finished answers are cached, run the same command again to resume")
            raise
    meta = {"qa": str(args.qa), "adapter": engine.adapter_name, "model": getattr(engine.generator, "model_id", ""),
            "style": settings.engine.answer_style, "collections": args.collection or settings.engine.collections,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = report(results, meta)
    out = Path(args.out) if args.out else ctx.paths.reports / f"answers-{engine.adapter_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"eval answers: {len(results)} items, adapter {engine.adapter_name}, style {meta['style']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN:
        value = data.get(key)
        table.add_row(key, "-" if value is None else f"{value:.3f}")
    ctx.console.print(table)
    ctx.say(f"report: {out / 'report.json'}")
    return 0


def calibrate(ctx: Any, args: Any) -> int:
    from chatkit.evaluation.calibrate import best_similarities, choose, sweep
    from chatkit.retrieval.service import load_embedder, open_searcher
    from chatkit.runtime import ensure_default_collections

    items = load_qa(Path(args.qa))
    settings, paths = ctx.settings, ctx.paths
    names = list(args.collection or settings.engine.collections)
    embedder = load_embedder(settings)
    ensure_default_collections(settings, paths, names, ctx.say, embedder)
    searcher = open_searcher(settings, paths, names, embedder=embedder)
    best = best_similarities(searcher, items, settings.engine.passages)
    rows = sweep(best, [it.answerable for it in items])
    pick = choose(rows)
    if args.json:
        print(json.dumps({"recommended": asdict(pick), "rows": [asdict(r) for r in rows]}, indent=2))
        return 0
    for r in rows:
        mark = " <- recommended" if r == pick else ""
        print(f"threshold {r.threshold:.3f}: accuracy {r.accuracy:.3f}, unanswerable refused {r.unanswerable_recall:.3f}, "
              f"answerable refused {r.answerable_abstained:.3f}{mark}")
    ctx.say(f"set it with: --set engine.abstain_threshold={pick.threshold} (or in your config file)")
    return 0
