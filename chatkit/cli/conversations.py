"""`chatkit conversations ls|show|rate|rm|export` over the conversation store."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import TYPE_CHECKING

from chatkit.cli import argtypes
from chatkit.cli.paths import writable_output
from chatkit.terminal_text import markup_safe, printable

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("conversations", parents=[common], help="list, rate and export conversations")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    ls = ss.add_parser("ls", parents=[common], help="list conversations, newest first")
    ls.add_argument("--search", default="", help="only conversations whose title or turns contain this text")
    ls.add_argument("--json", action="store_true")
    show = ss.add_parser("show", parents=[common], help="print one conversation's turns")
    show.add_argument("id", type=argtypes.positive_int)
    show.add_argument("--json", action="store_true")
    rate = ss.add_parser("rate", parents=[common], help="rate an answer +1 or -1")
    rate.add_argument("id", type=argtypes.positive_int, help="conversation id")
    rate.add_argument("turn", type=argtypes.non_negative_int, help="turn number (0 = first), as `conversations show` prints")
    rate.add_argument("rating", choices=["+1", "-1", "1"], help="+1 good, -1 bad")
    rate.add_argument("--comment", default="", help="what was good or wrong")
    rm = ss.add_parser("rm", parents=[common], help="delete a conversation")
    rm.add_argument("id", type=argtypes.positive_int)
    export = ss.add_parser("export", parents=[common], help="write conversations in the training format")
    export.add_argument("--rated", choices=["all", "good"], default="all", help="'good': only conversations rated +1 (never -1)")
    export.add_argument("--format", choices=["openai", "sharegpt"], default="openai", help="row format")
    export.add_argument("--out", required=True, help="JSONL file to write")
    for parser, name in ((ls, "ls"), (show, "show"), (rate, "rate"), (rm, "rm"), (export, "export")):
        parser.set_defaults(func=run, action=name)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.conversations import ConversationStore
    from chatkit.errors import InputError

    action = args.action
    out = writable_output(args.out, "--out") if action == "export" else None  # before the store is read
    store = ConversationStore(ctx.paths.conversations_db)
    if action == "ls":
        items = store.list_conversations(args.search)
        if args.json:
            print(json.dumps([c.__dict__ for c in items], indent=2))
            return 0
        if not items:
            ctx.say("no conversations yet (ask something: chatkit ask \"...\")")
        for c in items:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated))
            print(f"{c.id:>5}  {when}  {c.turns:>3} turns  {printable(c.title, one_line=True)}")
    elif action == "show":
        info = store.get_conversation(args.id)
        turns = store.turns(args.id)
        if args.json:
            print(json.dumps({"id": info.id, "title": info.title, "turns": [t.__dict__ for t in turns]}, indent=2, default=list))
            return 0
        ctx.console.print(f"[bold]#{info.id} {markup_safe(info.title, one_line=True)}[/]", highlight=False)
        for t in turns:
            flags = []
            if t.rating:
                flags.append(f"rated {t.rating:+d}")
            if not t.complete:
                flags.append("incomplete")
            if t.abstained:
                flags.append("abstained")
            ctx.console.print(f"\n[bold cyan]turn {t.idx}[/] [dim]{markup_safe(t.adapter or 'base')} {' '.join(flags)}[/]\n"
                              f"[bold]Q:[/] {markup_safe(t.question)}\n[bold]A:[/] {markup_safe(t.answer)}", highlight=False)
            for n, p in enumerate(t.passages, start=1):
                where = " > ".join((str(p.get("title", "")), str(p.get("heading", "")))) + f"  {p.get('source', '')}"
                ctx.console.print(f"   [dim][{n}] {markup_safe(where, one_line=True)}[/]", highlight=False)
    elif action == "rate":
        store.rate(args.id, args.turn, 1 if args.rating in ("+1", "1") else -1, args.comment)
        ctx.say(f"rated conversation {args.id} turn {args.turn}: {args.rating}")
    elif action == "rm":
        store.delete(args.id)
        ctx.say(f"deleted conversation {args.id}")
    elif action == "export":
        rows = store.export_rows(args.rated, args.format)
        if not rows:
            raise InputError("no conversations match", "rate answers first: chatkit conversations rate ID TURN +1")
        assert out is not None
        tmp = out.with_name(f".{out.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        ctx.say(f"wrote {len(rows)} conversations to {out}")
    return 0
