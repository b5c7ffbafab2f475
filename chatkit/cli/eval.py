"""`chatkit eval retrieval|answers|calibrate|compare|all`: arguments, progress, tables and reports."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatkit.cli.context import show_help
from chatkit.errors import CollectionError, InputError

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers
    from chatkit.config import Paths
    from chatkit.evaluation.answers import ItemResult, QAItem


SHOWN = ("token_f1", "exact_match", "rouge_l", "bleu", "keyword_recall", "citation_precision", "citation_recall",
         "groundedness", "gold_doc_retrieved", "reference_perplexity", "abstention_precision", "abstention_recall",
         "abstention_accuracy", "latency_p50_s", "latency_p95_s")


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure retrieval and answers")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    p.set_defaults(func=lambda ctx, args: show_help(p))
    r = ss.add_parser("retrieval", parents=[common], help="nDCG@10, Recall@10/100, MRR@10 on a BEIR folder or a QA file",
                      description="Index a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) into a cached "
                                  "collection and score the split's queries with trec_eval measures; or, with --qa, score "
                                  "the gold doc_ids of a QA file over the configured collections.")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", metavar="DIR", help="BEIR-layout folder, e.g. ../shared/data/scifact")
    source.add_argument("--qa", metavar="FILE", help="QA JSONL with gold doc_ids: Recall@1/3/5/10 and MRR@10 over the collections")
    r.add_argument("--collection", action="append", metavar="NAME", help="with --qa: collections to search (default: engine.collections)")
    r.add_argument("--split", default="test", help="qrels split (default: test)")
    r.add_argument("--mode", choices=["dense", "bm25", "hybrid", "all"], default=None, help="default: retrieval.mode")
    r.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N queries")
    r.add_argument("--json", action="store_true", help="print the scores as JSON")
    r.set_defaults(func=run_retrieval)
    a = ss.add_parser("answers", parents=[common], help="answer a QA file and score the answers (no LLM judge)",
                      description="Run the answer engine over a QA file (corpora/qa/*.jsonl format) and report token F1, "
                                  "exact match, ROUGE-L, BLEU, keyword recall, citation precision/recall, groundedness, "
                                  "abstention precision/recall, reference perplexity, retrieval recall and latency.")
    a.add_argument("--qa", required=True, metavar="FILE", help="QA JSONL: id, question, answer, doc_ids, keywords, answerable")
    a.add_argument("--collection", action="append", metavar="NAME", help="collections to search (default: engine.collections)")
    a.add_argument("--adapter", metavar="NAME", help="adapter to answer with, or 'base'")
    a.add_argument("--style", choices=["auto", "generative", "extractive"], help="answer style (default: engine.answer_style)")
    a.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    a.add_argument("--no-perplexity", action="store_true", help="skip the reference-answer perplexity (faster)")
    a.add_argument("--out", metavar="DIR", help="folder for report.json (default: <data dir>/reports/answers-<adapter>-<time>)")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.set_defaults(func=run_answers)
    c = ss.add_parser("calibrate", parents=[common], help="choose engine.abstain_threshold from a QA file's unanswerables",
                      description="Retrieval only: sweep the abstention threshold over the best passage similarity and "
                                  "print the most accurate one that refuses at most 5 % of answerable questions.")
    c.add_argument("--qa", required=True, metavar="FILE", help="QA JSONL with answerable true/false items")
    c.add_argument("--collection", action="append", metavar="NAME", help="collections to search (default: engine.collections)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_calibrate)
    m = ss.add_parser("compare", parents=[common], help="base vs adapters on the same QA items: CIs, verdict, report",
                      description="Answer a QA file with the base model, the current default and each adapter (cached), "
                                  "compare them item by item (bootstrap 95% CIs, Wilcoxon test, wins/ties/losses), write "
                                  "report.md/.html, PNGs and verdict.json into <data dir>/reports/compare-ADAPTER/ and print "
                                  "the verdict the promotion gate uses.")
    m.add_argument("--qa", required=True, metavar="FILE", help="QA JSONL: id, question, answer, doc_ids, keywords, answerable")
    m.add_argument("--adapter", action="append", required=True, metavar="NAME", help="adapter to compare (repeat for more)")
    m.add_argument("--collection", action="append", metavar="NAME", help="collections to search (default: engine.collections)")
    m.add_argument("--style", choices=["auto", "generative", "extractive"], help="answer style (default: engine.answer_style)")
    m.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    m.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    m.set_defaults(func=run_compare)
    al = ss.add_parser("all", parents=[common], help="retrieval on SciFact, answers on corpora/qa, compare the promoted adapter",
                       description="One report (<data dir>/reports/eval-all-TIME/): SciFact retrieval (dense, BM25, hybrid), "
                                   "answer metrics on the QA file and, when an adapter is promoted, its comparison with base.")
    al.add_argument("--beir", metavar="DIR", help="BEIR folder (default: ../shared/data/scifact beside the checkout)")
    al.add_argument("--qa", metavar="FILE", help="QA JSONL (default: corpora/qa/test.jsonl)")
    al.add_argument("--collection", action="append", metavar="NAME", help="collections for the answers (default: engine.collections)")
    al.add_argument("--limit", type=int, metavar="N", help="only the first N queries and QA items")
    al.add_argument("--json", action="store_true", help="print the report as JSON")
    al.set_defaults(func=run_all)


def run_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    if args.qa:
        return _run_qa_retrieval(ctx, args)
    return _run_beir_retrieval(ctx, args)


def _run_beir_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.beir import eval_retrieval as run

    modes = ("dense", "bm25", "hybrid") if args.mode == "all" else (args.mode or ctx.settings.retrieval.mode,)
    reporter = ctx.reporter(quiet=args.json)
    try:
        results = run(ctx.settings, ctx.paths, Path(args.beir), args.split, modes, args.limit, reporter, ctx.say)
    finally:
        reporter.close()
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    from rich.table import Table

    first = results[0]
    table = Table("mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10",
                  title=f"{Path(args.beir).name} {first['split']}: {first['queries']} queries, {first['documents']} documents, "
                        f"{first['chunks']} chunks")
    for r in results:
        mode = r["mode"] + (f" ({r['fusion']})" if r["fusion"] else "")
        table.add_row(mode, f"{r['ndcg@10']:.4f}", f"{r['recall@10']:.4f}", f"{r['recall@100']:.4f}", f"{r['mrr@10']:.4f}")
    ctx.console.print(table)
    return 0


def run_answers(ctx: Context, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from chatkit.assembly import build_engine
    from chatkit.evaluation.answers import GenerationCache, load_qa, report
    from chatkit.evaluation.answers import run_answers as answer_items

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
            results = answer_items(engine, items, cache, None, perplexity=not args.no_perplexity,
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


def run_calibrate(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.assembly import ensure_default_collections
    from chatkit.evaluation.answers import load_qa
    from chatkit.evaluation.calibrate import best_similarities, choose, sweep
    from chatkit.retrieval.service import load_embedder, open_searcher

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


def _check_adapters(paths: Paths, names: Sequence[str]) -> None:
    """Fail on an unknown or corrupt adapter before any model loads."""
    from chatkit.training.registry import get_adapter

    if not names:
        raise InputError("nothing to compare: base is always included", "pass --adapter NAME (`chatkit adapters ls` lists them)")
    for name in names:
        get_adapter(paths, name)


def check_collections(ctx: Context, names: Sequence[str]) -> None:
    """A missing or empty collection fails here, before the embedder and the model load (seconds)."""
    from chatkit.assembly import DEFAULT_COLLECTIONS
    from chatkit.retrieval.service import collection, missing_hint

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


def answer_all(ctx: Context, engine: Any, items: Sequence[QAItem], names: Sequence[str]) -> dict[str, list[ItemResult]]:
    """Answer every item with every model on one warm base; generations are cached, so Ctrl-C then a re-run resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from chatkit.evaluation.answers import GenerationCache
    from chatkit.evaluation.answers import run_answers as answer_items

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
                results[name] = answer_items(engine, items, cache, None, perplexity=False,
                                            on_item=lambda r: bar.update(task, advance=1, last=r.id))
        except KeyboardInterrupt:
            ctx.say("interrupted: finished answers are cached, run the same command again to resume")
            raise
    return results


def compare_adapters(ctx: Context, qa: Path, adapters: Sequence[str], collections: Sequence[str] | None, limit: int | None,
                     style: str | None) -> list[tuple[Any, Path]]:
    """Base, the current default and each adapter over the same items; one report per adapter."""
    from chatkit.assembly import build_engine
    from chatkit.evaluation.answers import load_qa, summarize
    from chatkit.evaluation.compare import compare
    from chatkit.evaluation.report import write_comparison
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


def print_verdicts(ctx: Context, written: Sequence[tuple[Any, Path]]) -> None:
    for gate, folder in written:
        f1, cp = gate.metric("token_f1"), gate.metric("citation_precision")
        color = {"better": "green", "worse": "red"}.get(gate.verdict, "yellow")
        ctx.console.print(f"[bold]{gate.candidate}[/] vs {gate.baseline}: [{color}]{gate.verdict}[/]  token F1 {f1.diff:+.3f} "
                          f"[{f1.ci_low:+.3f}, {f1.ci_high:+.3f}], citation precision {cp.diff:+.3f} [{cp.ci_low:+.3f}, {cp.ci_high:+.3f}], "
                          f"{gate.wins}/{gate.ties}/{gate.losses} wins/ties/losses", highlight=False)
        ctx.say(f"report: {folder / 'report.md'} (and report.html)")


def run_compare(ctx: Context, args: argparse.Namespace) -> int:
    written = compare_adapters(ctx, Path(args.qa), [a for a in dict.fromkeys(args.adapter) if a != "base"], args.collection, args.limit, args.style)
    if args.json:
        print(json.dumps([gate.verdict_json() | {"report": str(folder)} for gate, folder in written], indent=2))
    else:
        print_verdicts(ctx, written)
    return 0


def _run_qa_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.assembly import ensure_default_collections
    from chatkit.evaluation.answers import load_qa
    from chatkit.evaluation.retrieval import eval_qa_retrieval
    from chatkit.retrieval.service import load_embedder, open_searcher

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
    from chatkit.corpora import corpora_root

    return corpora_root().parent.parent / "shared" / "data" / "scifact"


def run_all(ctx: Context, args: argparse.Namespace) -> int:
    """Retrieval on SciFact, answers on corpora/qa, compare for the promoted adapter: one report."""
    from chatkit.corpora import corpora_root
    from chatkit.evaluation.answers import load_qa, summarize
    from chatkit.evaluation.beir import eval_retrieval
    from chatkit.indexing.report import QuietReporter
    from chatkit.training.registry import default_adapter

    qa = Path(args.qa) if args.qa else corpora_root() / "qa" / "test.jsonl"
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
        from chatkit.assembly import build_engine

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
            "gold_doc_retrieved", "abstention_precision", "abstention_recall", "latency_p50_s", "latency_p95_s")
    names = list(out["answers"])
    lines += ["", "## Answers", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join("-" if out["answers"][n].get(k) is None else f"{out['answers'][n][k]:.3f}" for n in names) + " |")
    c = out["compare"]
    lines += ["", "## Compare", ""]
    lines.append(f"{c['adapter']} vs {c['baseline']}: **{c['verdict']}** ({c['report']})" if c else "no promoted adapter: nothing to compare")
    return "\n".join(lines) + "\n"
