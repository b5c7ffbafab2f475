from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common], help="ask one question, get a cited answer",
                       description="Retrieve passages, stream a grounded answer citing them as [n], then list the sources.")
    p.add_argument("question", help="the question (quote it)")
    p.add_argument("--collection", action="append", metavar="NAME", help="collection to search (repeatable; default: engine.collections)")
    p.add_argument("--adapter", metavar="NAME", help="adapter to answer with, or 'base' for none")
    p.add_argument("-k", type=int, metavar="N", help="passages to give the model (default: engine.passages)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default: retrieval.mode)")
    p.add_argument("--style", choices=["auto", "generative", "extractive"], help="answer style (default: engine.answer_style)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    p.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli.asking import ask

    return ask(ctx, args)
