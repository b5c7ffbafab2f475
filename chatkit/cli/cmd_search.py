from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search a collection",
                       description="Ranked passages with score, title, source, heading and a highlighted snippet.")
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", type=int, default=None, help="number of hits (default: retrieval.k)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default=None, help="default: retrieval.mode (hybrid)")
    p.add_argument("--collection", "-c", action="append", metavar="NAME", help="collection to search (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.search(ctx, args)
