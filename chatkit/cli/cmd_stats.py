from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stats", parents=[common], help="usage statistics from the conversation store",
                       description="Answers per day, latency p50/p95, tokens/s, abstention rate and feedback ratio, "
                                   "overall and per adapter, from every turn asked with ask, chat or serve.")
    p.add_argument("--since", default="", metavar="SPAN",
                   help="only turns from this period: 7d, 24h, 30m, 2w or a date like 2025-01-31 (default: all)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--png", metavar="FILE", help="also draw the figures into this PNG file")
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import stats_cmd

    return stats_cmd.run(ctx, args)
