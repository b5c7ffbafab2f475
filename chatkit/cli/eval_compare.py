"""`chatkit eval compare`, `chatkit eval all` and `chatkit eval retrieval --qa`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chatkit.errors import CollectionError, InputError
from chatkit.evaluation.answers import GenerationCache, ItemResult, QAItem, load_qa, run_answers, summarize


def _check_adapters(paths: Any, names: Sequence[str]) -> None:
    """Fail on an unknown or corrupt adapter before any model loads."""
    from chatkit.training.registry import get_adapter

    if not names:
        raise InputError("nothing to compare: base is always included", "pass --adapter NAME (`chatkit adapters ls` lists them)")
    for name in names:
        get_adapter(paths, name)


def check_collections(ctx: Any, names: Sequence[str]) -> None:
    """A missing or empty collection fails here, before the embedder and the model load (seconds)."""
    from chatkit.retrieval.service import collection, missing_hint
    from chatkit.runtime import DEFAULT_COLLECTIONS

    for name in names:
        if name in DEFAULT_COLLECTIONS:
            continue  # built from corpora/ on first use
        col = collection(ctx.settings, ctx.paths, name)
        try:
            if not col.exists:
                raise CollectionError(f"collection '{name}' does not exist", missing_hint(name))
            if col.store.counts()["chunks"] == 0:
                raise CollectionError(f"collection '{name}' is empty", missing_hint(name))
        finally:
            col.close()


def answer_all(ctx: Any, engine: Any, items: Sequence[QAItem], names: Sequence[str]) -> dict[str, list[ItemResult]]:
    """Answer every item with every model on one warm base; generations are cached, so Ctrl-C then a re-run resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cache = GenerationCache(ctx.paths.cache / "generations.sqlite")
    columns = (TextColumn("answering {task.fields[model]}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[last]}"))
    results: dict[str, list[ItemResult]] = {}
    with Progress(*columns, console=ctx.err_console, transient=True) as bar:
        task = bar.add_task("qa", total=len(items) * len(names), model="", last="")
        try:
            for name in names:
                engine.use_adapter(name)
                bar.update(task, model=name)
                results[name] = run_answers(engine, items, cache, None, perplexity=False,
                                            on_item=lambda r: bar.update(task, advance=1, last=r.id))
        except KeyboardInterrupt:
            ctx.say("interrupted: finished answers are cached, run the same command again to resume")
            raise
    return results


def compare_adapters(ctx: Any, qa: Path, adapters: Sequence[str], collections: Sequence[str] | None, limit: int | None,
                     style: str | None) -> list[tuple[Any, Path]]:
    """Base, the current default and each adapter over the same items; one report per adapter."""
    from chatkit.evaluation.compare import compare
    from chatkit.evaluation.report import write_comparison
    from chatkit.runtime import build_engine
    from chatkit.training.registry import default_adapter

    items = load_qa(qa)[: limit or None]  # bad files fail before any model loads
    _check_adapters(ctx.paths, adapters)
    check_collections(ctx, list(collections or ctx.settings.engine.collections))
    current = default_adapter(ctx.paths) or "base"
    names = list(dict.fromkeys(["base", current, *adapters]))
    settings = ctx.settings
    if style:
        settings.engine.answer_style = style
    elif settings.engine.answer_style == "extractive":
        # Extractive answers quote passages without the model, so every adapter would tie with base.
        ctx.say("comparing generated answers (--style generative): extractive answers do not use the adapter")
        settings.engine.answer_style = "generative"
    engine = build_engine(settings, ctx.paths, collections, progress=ctx.say)
    results = answer_all(ctx, engine, items, names)
    meta = {"qa": str(qa), "items": len(items), "model": getattr(engine.generator, "model_id", ""),
            "style": settings.engine.answer_style, "collections": ", ".join(collections or settings.engine.collections),
            "current default": current}
    written = []
    for name in adapters:
        # The gate compares against the current default; base stays in the report for reference.
        baseline = current if name != current else "base"
        gate = compare(results[baseline], results[name], baseline, name)
        others = [compare(results["base"], results[name], "base", name)] if baseline != "base" else []
        dump = {n: {"summary": summarize(results[n]), "items": [asdict(r) for r in results[n]]} for n in dict.fromkeys([baseline, "base", name])}
        written.append((gate, write_comparison(ctx.paths.reports, gate, others, meta, dump)))
    return written


def print_verdicts(ctx: Any, written: Sequence[tuple[Any, Path]]) -> None:
    for gate, folder in written:
        f1, cp = gate.metric("token_f1"), gate.metric("citation_precision")
        color = {"better": "green", "worse": "red"}.get(gate.verdict, "yellow")
        ctx.console.print(f"[bold]{gate.candidate}[/] vs {gate.baseline}: [{color}]{gate.verdict}[/]  token F1 {f1.diff:+.3f} "
                          f"[{f1.ci_low:+.3f}, {f1.ci_high:+.3f}], citation precision {cp.diff:+.3f} [{cp.ci_low:+.3f}, {cp.ci_high:+.3f}], "
                          f"{gate.wins}/{gate.ties}/{gate.losses} wins/ties/losses", highlight=False)
        ctx.say(f"report: {folder / 'report.md'} (and report.html)")


def run_compare(ctx: Any, args: Any) -> int:
    written = compare_adapters(ctx, Path(args.qa), [a for a in dict.fromkeys(args.adapter) if a != "base"], args.collection, args.limit, args.style)
    if args.json:
        print(json.dumps([gate.verdict_json() | {"report": str(folder)} for gate, folder in written], indent=2))
    else:
        print_verdicts(ctx, written)
    return 0


def run_qa_retrieval(ctx: Any, args: Any) -> int:
    from chatkit.evaluation.retrieval import eval_qa_retrieval
    from chatkit.retrieval.service import load_embedder, open_searcher
    from chatkit.runtime import ensure_default_collections

    items = load_qa(Path(args.qa))[: args.limit or None]
    names = list(args.collection or ctx.settings.engine.collections)
    check_collections(ctx, names)
    embedder = load_embedder(ctx.settings)
    ensure_default_collections(ctx.settings, ctx.paths, names, ctx.say, embedder)
    searcher = open_searcher(ctx.settings, ctx.paths, names, embedder=embedder)
    modes = ("dense", "bm25", "hybrid") if args.mode == "all" else (args.mode or ctx.settings.retrieval.mode,)
    results = [eval_qa_retrieval(searcher, items, mode) | {"collections": names} for mode in modes]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    from rich.table import Table

    keys = [k for k in results[0] if k.startswith(("recall@", "mrr@"))]
    table = Table("mode", *keys, title=f"{Path(args.qa).name}: {results[0]['queries']} answerable questions over {', '.join(names)}")
    for r in results:
        table.add_row(str(r["mode"]), *(f"{r[k]:.4f}" for k in keys))
    ctx.console.print(table)
    return 0


def default_beir() -> Path:
    from chatkit.runtime import corpora_root

    return corpora_root().parent.parent / "shared" / "data" / "scifact"


def run_all(ctx: Any, args: Any) -> int:
    """Retrieval on SciFact, answers on corpora/qa, compare for the promoted adapter: one report."""
    from chatkit.indexing.beir import eval_retrieval
    from chatkit.indexing.report import QuietReporter
    from chatkit.runtime import corpora_root
    from chatkit.training.registry import default_adapter

    qa = Path(args.qa) if args.qa else corpora_root() / "qa" / "qa.jsonl"
    beir = Path(args.beir) if args.beir else default_beir()
    items = load_qa(qa)[: args.limit or None]
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "qa": str(qa), "beir": str(beir)}
    ctx.say(f"retrieval on {beir.name}...")
    out["retrieval"] = eval_retrieval(ctx.settings, ctx.paths, beir, "test", ("dense", "bm25", "hybrid"), args.limit, QuietReporter(ctx.say), ctx.say)
    active = default_adapter(ctx.paths)
    if active:
        written = compare_adapters(ctx, qa, [active], args.collection, args.limit, None)
        gate, folder = written[0]
        data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        out["answers"] = {name: d["summary"] for name, d in data.items()}
        out["compare"] = {"report": str(folder), **gate.verdict_json()}
    else:
        from chatkit.runtime import build_engine

        check_collections(ctx, list(args.collection or ctx.settings.engine.collections))
        engine = build_engine(ctx.settings, ctx.paths, args.collection, progress=ctx.say)
        out["answers"] = {"base": summarize(answer_all(ctx, engine, items, ["base"])["base"])}
        out["compare"] = None
    folder = ctx.paths.reports / f"eval-all-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    (folder / "report.md").write_text(all_markdown(out), encoding="utf-8")
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(all_markdown(out))
        ctx.say(f"report: {folder / 'report.md'}")
    return 0


def all_markdown(out: dict[str, Any]) -> str:
    lines = ["# chatkit eval all", "", f"{out['date']}; QA {out['qa']}; BEIR {out['beir']}", "", f"## Retrieval ({Path(out['beir']).name}, test split)", "",
             "| mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['mode']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} |" for r in out["retrieval"]]
    keys = ("token_f1", "rouge_l", "bleu", "keyword_recall", "citation_precision", "citation_recall", "groundedness",
            "retrieval_recall", "abstention_precision", "abstention_recall", "latency_p50_s", "latency_p95_s")
    names = list(out["answers"])
    lines += ["", "## Answers", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join("-" if out["answers"][n].get(k) is None else f"{out['answers'][n][k]:.3f}" for n in names) + " |")
    c = out["compare"]
    lines += ["", "## Compare", ""]
    lines.append(f"{c['adapter']} vs {c['baseline']}: **{c['verdict']}** ({c['report']})" if c else "no promoted adapter: nothing to compare")
    return "\n".join(lines) + "\n"
