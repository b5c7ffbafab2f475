from __future__ import annotations

import argparse
from typing import Any

from chatkit.errors import NotImplementedYet


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure retrieval and answers")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    p.set_defaults(func=lambda ctx, args: p.print_help() or 2)
    r = ss.add_parser("retrieval", parents=[common], help="nDCG@10, Recall@10/100, MRR@10 on a BEIR folder",
                      description="Index a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) into a cached "
                                  "collection and score the split's queries with trec_eval measures.")
    r.add_argument("--beir", required=True, metavar="DIR", help="BEIR-layout folder, e.g. ../shared/data/scifact")
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
    for name in ("compare", "all"):
        sp = ss.add_parser(name, parents=[common], help=f"eval {name} (not implemented yet)")
        sp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sp.set_defaults(func=_not_yet)


def _not_yet(ctx: Any, args: argparse.Namespace) -> int:
    raise NotImplementedYet(f"`chatkit eval {args.sub}` is not implemented yet", "see the open issues for its plan")


def run_answers(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_answers

    return eval_answers.run(ctx, args)


def run_calibrate(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import eval_answers

    return eval_answers.calibrate(ctx, args)


def run_retrieval(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.eval_retrieval(ctx, args)
