from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("conversations", parents=[common], help="list, rate and export conversations")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    ls = ss.add_parser("ls", parents=[common], help="list conversations, newest first")
    ls.add_argument("--search", default="", help="only conversations whose title or turns contain this text")
    ls.add_argument("--json", action="store_true")
    show = ss.add_parser("show", parents=[common], help="print one conversation's turns")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    rate = ss.add_parser("rate", parents=[common], help="rate an answer +1 or -1")
    rate.add_argument("id", type=int, help="conversation id")
    rate.add_argument("turn", type=int, help="turn number (0 = first), as `conversations show` prints")
    rate.add_argument("rating", choices=["+1", "-1", "1"], help="+1 good, -1 bad")
    rate.add_argument("--comment", default="", help="what was good or wrong")
    rm = ss.add_parser("rm", parents=[common], help="delete a conversation")
    rm.add_argument("id", type=int)
    export = ss.add_parser("export", parents=[common], help="write conversations in the training format")
    export.add_argument("--rated", choices=["all", "good"], default="all", help="'good': only conversations rated +1 (never -1)")
    export.add_argument("--format", choices=["openai", "sharegpt"], default="openai", help="row format")
    export.add_argument("--out", required=True, help="JSONL file to write")
    for parser, name in ((ls, "ls"), (show, "show"), (rate, "rate"), (rm, "rm"), (export, "export")):
        parser.set_defaults(func=run, action=name)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import conversations_cmd

    return conversations_cmd.run(ctx, args)
