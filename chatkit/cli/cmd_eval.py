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
    for name in ("answers", "compare", "all"):
        sp = ss.add_parser(name, parents=[common], help=f"eval {name} (not implemented yet)")
        sp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sp.set_defaults(func=_not_yet)


def _not_yet(ctx: Any, args: argparse.Namespace) -> int:
    raise NotImplementedYet(f"`chatkit eval {args.sub}` is not implemented yet", "see the open issues for its plan")


def run_retrieval(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.eval_retrieval(ctx, args)
