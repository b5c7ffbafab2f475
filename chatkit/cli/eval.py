"""`chatkit eval retrieval|answers|calibrate|compare|all`: arguments, progress, tables and reports."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatkit.cli import argtypes
from chatkit.cli.context import show_help
from chatkit.cli.paths import writable_output

if TYPE_CHECKING:
    from rich.progress import Progress

    from chatkit.cli.context import Context, Subparsers
    from chatkit.evaluation.adapter_comparison import AdapterComparison
    from chatkit.evaluation.answers import ItemResult


SHOWN = ("token_f1", "exact_match", "rouge_l", "bleu", "keyword_recall", "citation_precision", "citation_recall",
         "groundedness", "gold_doc_retrieved", "reference_perplexity", "abstention_precision", "abstention_recall",
         "abstention_accuracy", "wrongly_refused", "refused_near_topic", "refused_off_topic", "latency_p50_s", "latency_p95_s")


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
    r.add_argument("--limit", type=argtypes.positive_int, default=None, metavar="N", help="only the first N queries")
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
    a.add_argument("--limit", type=argtypes.positive_int, metavar="N", help="only the first N items")
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
    m.add_argument("--limit", type=argtypes.positive_int, metavar="N", help="only the first N items")
    m.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    m.set_defaults(func=run_compare)
    al = ss.add_parser("all", parents=[common], help="retrieval on SciFact, answers on corpora/qa, compare the promoted adapter",
                       description="One report (<data dir>/reports/eval-all-TIME/): SciFact retrieval (dense, BM25, hybrid), "
                                   "answer metrics on the QA file and, when an adapter is promoted, its comparison with base.")
    al.add_argument("--beir", metavar="DIR", help="BEIR folder (default: ../shared/data/scifact beside the checkout)")
    al.add_argument("--qa", metavar="FILE", help="QA JSONL (default: corpora/qa/test.jsonl)")
    al.add_argument("--collection", action="append", metavar="NAME", help="collections for the answers (default: engine.collections)")
    al.add_argument("--limit", type=argtypes.positive_int, metavar="N", help="only the first N queries and QA items")
    al.add_argument("--json", action="store_true", help="print the report as JSON")
    al.set_defaults(func=run_all)


def run_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    if args.qa:
        return _run_qa_retrieval(ctx, args)
    return _run_beir_retrieval(ctx, args)


def _modes(ctx: Context, args: argparse.Namespace) -> tuple[str, ...]:
    return ("dense", "bm25", "hybrid") if args.mode == "all" else (args.mode or ctx.settings.retrieval.mode,)


def _run_beir_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.beir import eval_retrieval as run

    reporter = ctx.reporter(quiet=args.json)
    try:
        results = run(ctx.settings, ctx.paths, Path(args.beir), args.split, _modes(ctx, args), args.limit, reporter, ctx.say)
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


def _run_qa_retrieval(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.retrieval import qa_file_retrieval

    results = qa_file_retrieval(ctx.settings, ctx.paths, Path(args.qa), args.collection, _modes(ctx, args), args.limit, ctx.say)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    from rich.table import Table

    names = results[0]["collections"]
    keys = [k for k in results[0] if k.startswith(("recall@", "mrr@"))]
    table = Table("mode", *keys, title=f"{Path(args.qa).name}: {results[0]['queries']} answerable questions over {', '.join(names)}")
    for r in results:
        table.add_row(str(r["mode"]), *(f"{r[k]:.4f}" for k in keys))
    ctx.console.print(table)
    return 0


class AnswerBar:
    """The answering progress bar on stderr, shown from the first answer (not while models load)."""

    def __init__(self, ctx: Context, per_model: bool) -> None:
        self.ctx = ctx
        self.per_model = per_model
        self.started = False
        self._bar: Progress | None = None
        self._task: Any = None

    def start(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        label = TextColumn("answering {task.fields[model]}" if self.per_model else "answering")
        self._bar = Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                             console=self.ctx.err_console, transient=True)
        self._bar.start()
        self._task = self._bar.add_task("qa", total=total, model="", last="")
        self.started = True

    def model(self, name: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, model=name)

    def item(self, result: ItemResult) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, last=result.id)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def interrupted(self) -> None:
        if self.started:
            self.ctx.say("interrupted: finished answers are cached, run the same command again to resume")


def run_answers(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.answering import answer_qa_file

    out = writable_output(args.out, "--out", folder=True) if args.out else None  # before any model loads
    bar = AnswerBar(ctx, per_model=False)
    try:
        run = answer_qa_file(ctx.settings, ctx.paths, Path(args.qa), args.collection, args.adapter, args.style, args.limit,
                             not args.no_perplexity, out, ctx.say, bar)
    except KeyboardInterrupt:
        bar.interrupted()
        raise
    if args.json:
        print(json.dumps(run.report, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"eval answers: {run.items} items, adapter {run.adapter}, style {run.style}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SHOWN:
        value = run.report.get(key)
        table.add_row(key, "-" if value is None else f"{value:.3f}")
    ctx.console.print(table)
    ctx.say(f"report: {run.folder / 'report.json'}")
    return 0


def run_calibrate(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.calibrate import calibrate

    result = calibrate(ctx.settings, ctx.paths, Path(args.qa), args.collection, ctx.say)
    pick = result.recommended
    if args.json:
        print(json.dumps({"recommended": asdict(pick), "rows": [asdict(r) for r in result.rows]}, indent=2))
        return 0
    for r in result.rows:
        mark = " <- recommended" if r == pick else ""
        print(f"threshold {r.threshold:.3f}: accuracy {r.accuracy:.3f}, unanswerable refused {r.unanswerable_recall:.3f}, "
              f"answerable refused {r.answerable_abstained:.3f}{mark}")
    ctx.say(f"set it with: --set engine.abstain_threshold={pick.threshold} (or in your config file)")
    return 0


def print_verdicts(ctx: Context, written: Sequence[AdapterComparison]) -> None:
    for run in written:
        gate = run.gate
        f1, cp = gate.metric("token_f1"), gate.metric("citation_precision")
        color = {"better": "green", "worse": "red"}.get(gate.verdict, "yellow")
        ctx.console.print(f"[bold]{gate.candidate}[/] vs {gate.baseline}: [{color}]{gate.verdict}[/]  token F1 {f1.diff:+.3f} "
                          f"[{f1.ci_low:+.3f}, {f1.ci_high:+.3f}], citation precision {cp.diff:+.3f} [{cp.ci_low:+.3f}, {cp.ci_high:+.3f}], "
                          f"{gate.wins}/{gate.ties}/{gate.losses} wins/ties/losses", highlight=False)
        if gate.verdict != "no significant difference":
            for reason in gate.reasons:
                ctx.console.print(f"  {reason}", highlight=False)
        ctx.say(f"report: {run.folder / 'report.md'} (and report.html)")


def run_compare(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.evaluation.adapter_comparison import compare_adapters

    adapters = [a for a in dict.fromkeys(args.adapter) if a != "base"]
    bar = AnswerBar(ctx, per_model=True)
    try:
        written = compare_adapters(ctx.settings, ctx.paths, Path(args.qa), adapters, args.collection, args.limit, args.style, ctx.say, bar)
    except KeyboardInterrupt:
        bar.interrupted()
        raise
    if args.json:
        print(json.dumps([run.gate.verdict_json() | {"report": str(run.folder)} for run in written], indent=2))
    else:
        print_verdicts(ctx, written)
    return 0


def run_all(ctx: Context, args: argparse.Namespace) -> int:
    """Retrieval on SciFact, answers on corpora/qa, compare for the promoted adapter: one report."""
    from chatkit.evaluation.suite import default_beir, default_qa, run_suite, suite_markdown

    qa = Path(args.qa) if args.qa else default_qa()
    beir = Path(args.beir) if args.beir else default_beir()
    bar = AnswerBar(ctx, per_model=True)
    try:
        run = run_suite(ctx.settings, ctx.paths, qa, beir, args.collection, args.limit, ctx.say, bar)
    except KeyboardInterrupt:
        bar.interrupted()
        raise
    if args.json:
        print(json.dumps(run.report, indent=2))
    else:
        print(suite_markdown(run.report))
        ctx.say(f"report: {run.folder / 'report.md'}")
    return 0
