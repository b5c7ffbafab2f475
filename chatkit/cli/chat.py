"""`chatkit chat`: the terminal chat app."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from chatkit.cli import argtypes

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("chat", parents=[common], help="the terminal chat app",
                       description="Chat with your documents: streamed, cited answers, sources pane, conversations, "
                                   "ratings, adapters. Press F1 in the app for every key.")
    p.add_argument("--collection", action="append", metavar="NAME", help="collection to search (repeatable; default: engine.collections)")
    p.add_argument("--adapter", metavar="NAME", help="adapter to answer with, or 'base' for none")
    p.add_argument("-k", type=argtypes.like_key("engine.passages"), metavar="N", help="passages to give the model (default: engine.passages)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default: retrieval.mode)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--new", action="store_true", help="start a new conversation instead of resuming the last one")
    g.add_argument("--conversation", type=argtypes.positive_int, metavar="ID", help="open this conversation (`chatkit conversations ls`)")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.tui.launch import run_chat

    return run_chat(ctx.settings, ctx.paths, collections=args.collection, adapter=args.adapter, k=args.k,
                    mode=args.mode, conversation=args.conversation, new=args.new)
