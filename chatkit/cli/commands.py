"""Every verb, grouped by stage. Verbs not built yet say so and exit 2."""

from __future__ import annotations

import argparse
from typing import Any

from chatkit.cli import (
    cmd_adapters,
    cmd_ask,
    cmd_chat,
    cmd_config,
    cmd_conversations,
    cmd_data,
    cmd_doctor,
    cmd_eval,
    cmd_index,
    cmd_search,
    cmd_serve,
    cmd_stats,
    cmd_train,
)
from chatkit.errors import NotImplementedYet

PLANNED: dict[str, tuple[str, list[str]]] = {
    # verb: (help, sub-verbs)
    "index": ("build and maintain collections of your documents", ["add", "status", "sync", "rm", "ls", "stats", "drop", "rebuild"]),
    "search": ("search a collection", []),
    "ask": ("ask one question, get a cited answer", []),
    "chat": ("the terminal chat app", []),
    "conversations": ("list, rate and export conversations", ["ls", "show", "rate", "rm", "export"]),
    "train": ("validate data and fine-tune with LoRA", ["validate", "sft"]),
    "adapters": ("the adapter registry", ["ls", "show", "promote", "rollback", "rm", "export"]),
    "eval": ("measure retrieval and answers", ["retrieval", "answers", "compare", "all"]),
}


def _not_yet(ctx: Any, args: argparse.Namespace) -> int:
    verb = " ".join(v for v in (args.verb, getattr(args, "sub", None)) if v)
    raise NotImplementedYet(f"`chatkit {verb}` is not implemented yet", "see the open issues for its plan")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    built = {"train": cmd_train, "adapters": cmd_adapters, "index": cmd_index, "search": cmd_search, "eval": cmd_eval, "config": cmd_config, "doctor": cmd_doctor, "ask": cmd_ask, "chat": cmd_chat, "conversations": cmd_conversations, "data": cmd_data,
             "serve": cmd_serve, "stats": cmd_stats}
    order = ["index", "search", "ask", "chat", "conversations", "data", "train", "adapters", "eval", "serve", "stats"]
    for verb in order:
        if verb in built:
            built[verb].register(sub, common)
            continue
        help_text, subs = PLANNED[verb]
        p = sub.add_parser(verb, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=_not_yet)
        if subs:
            ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
            for s in subs:
                sp = ss.add_parser(s, parents=[common], help=f"{verb} {s} (not implemented yet)")
                sp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
                sp.set_defaults(func=_not_yet)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    for late in ("doctor", "config"):
        built[late].register(sub, common)
