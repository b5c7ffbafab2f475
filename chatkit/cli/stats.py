"""`chatkit stats`: usage figures from the conversation store, as a table, JSON or a PNG."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from chatkit.cli.paths import writable_output
from chatkit.terminal_text import markup_safe

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stats", parents=[common], help="usage statistics from the conversation store",
                       description="Answers per day, latency p50/p95, tokens/s, abstention rate and feedback ratio, "
                                   "overall and per adapter, from every turn asked with ask, chat or serve.")
    p.add_argument("--since", default="", metavar="SPAN",
                   help="only turns from this period: 7d, 24h, 30m, 2w or a date like 2025-01-31 (default: all)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--png", metavar="FILE", help="also draw the figures into this PNG file (.png is added if missing)")
    p.set_defaults(func=run)


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.conversations import ConversationStore
    from chatkit.evaluation.usage import parse_since, plot_usage, usage_stats

    since = parse_since(args.since)  # a bad span fails before the store is opened
    png = writable_output(args.png, "--png", suffix=".png") if args.png else None
    store = ConversationStore(ctx.paths.conversations_db)
    try:
        stats = usage_stats(store.all_turns(since), since)
    finally:
        store.close()
    if png:
        out = plot_usage(stats, png)
        ctx.say(f"wrote {out}")
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return 0
    if not stats.overall.questions:
        ctx.say("no turns in this period (ask something: chatkit ask \"...\", chatkit chat or chatkit serve)")
        return 0
    from rich.table import Table

    table = Table(title=f"chatkit usage{' since ' + args.since if args.since else ''}")
    for col in ("adapter", "answers", "per day", "p50", "p95", "tok/s", "abstain", "+1/-1", "good"):
        table.add_column(col, justify="left" if col == "adapter" else "right")
    rows = [*stats.adapters.items(), ("all", stats.overall)] if len(stats.adapters) > 1 else list(stats.adapters.items())
    for name, g in rows:
        days = len(g.per_day)
        table.add_row(markup_safe(name, one_line=True), f"{g.answers}" + (f" (+{g.incomplete} incomplete)" if g.incomplete else ""),
                      _num(g.answers / days if days else None, "{:.1f}"), _num(g.latency_p50_s, "{:.2f} s"),
                      _num(g.latency_p95_s, "{:.2f} s"), _num(g.tokens_per_s, "{:.1f}"), _pct(g.abstention_rate),
                      f"{g.good}/{g.bad}", _pct(g.feedback_ratio))
    ctx.console.print(table)
    per_day = stats.overall.per_day
    if per_day:
        ctx.console.print("answers per day: " + ", ".join(f"{d} {n}" for d, n in per_day.items()), highlight=False)
    return 0
