from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure retrieval and answers")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    p.set_defaults(func=lambda ctx, args: p.print_help() or 2)
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
                      description="Run the answer engine over a QA file (corpora/qa/qa.jsonl format) and report token F1, "
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
    al.add_argument("--qa", metavar="FILE", help="QA JSONL (default: corpora/qa/qa.jsonl)")
    al.add_argument("--collection", action="append", metavar="NAME", help="collections for the answers (default: engine.collections)")
    al.add_argument("--limit", type=int, metavar="N", help="only the first N queries and QA items")
    al.add_argument("--json", action="store_true", help="print the report as JSON")
    al.set_defaults(func=run_all)


def run_compare(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_compare

    return eval_compare.run_compare(ctx, args)


def run_all(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_compare

    return eval_compare.run_all(ctx, args)


def run_answers(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_answers

    return eval_answers.run(ctx, args)


def run_calibrate(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_answers

    return eval_answers.calibrate(ctx, args)


def run_retrieval(ctx: Any, args: argparse.Namespace) -> int:
    if args.qa:
        from chatkit.cli import eval_compare

        return eval_compare.run_qa_retrieval(ctx, args)
    from chatkit.indexing import verbs

    return verbs.eval_retrieval(ctx, args)
