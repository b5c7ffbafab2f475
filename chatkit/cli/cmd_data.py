from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("data", parents=[common], help="make training data from a collection",
                       description="Make grounded training conversations from your collections, without a large model.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    s = ss.add_parser("synth", parents=[common], help="synthesize grounded RAG conversations from a collection",
                      description="Questions from headings and definition sentences; answers quote the supporting passage "
                                  "with [n] citations among retrieved distractor passages; some unanswerable questions "
                                  "(answered with the abstention text) and two-turn follow-ups; duplicates dropped; whole "
                                  "documents split into FILE and FILE's .val.jsonl sibling.")
    s.add_argument("--collection", action="append", required=True, metavar="NAME", help="collection to draw from (repeat for more)")
    s.add_argument("--out", required=True, metavar="FILE", help="training JSONL to write (validation goes to FILE.val.jsonl)")
    s.add_argument("--n", type=int, default=300, metavar="N", help="conversations to make (default: 300)")
    s.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="share of documents held out for validation (default: 0.1)")
    s.add_argument("--unanswerable", type=float, default=0.15, metavar="F", help="share of unanswerable questions (default: 0.15)")
    s.add_argument("--multi-turn", type=float, default=0.2, metavar="F", help="share of two-turn conversations (default: 0.2)")
    s.add_argument("--exclude", action="append", default=[], metavar="FILE",
                   help="QA or conversation JSONL whose questions must not appear (e.g. corpora/qa/qa.jsonl)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=run_synth)


def run_synth(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import synth_cmd

    return synth_cmd.run(ctx, args)
