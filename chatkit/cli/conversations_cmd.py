"""The `chatkit conversations` verbs over the conversation store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from chatkit.conversations import ConversationStore
from chatkit.errors import InputError


def run(ctx: Any, args: Any) -> int:
    store = ConversationStore(ctx.paths.conversations_db)
    action = args.action
    if action == "ls":
        items = store.list_conversations(args.search)
        if args.json:
            print(json.dumps([c.__dict__ for c in items], indent=2))
            return 0
        if not items:
            ctx.say("no conversations yet (ask something: chatkit ask \"...\")")
        for c in items:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated))
            print(f"{c.id:>5}  {when}  {c.turns:>3} turns  {c.title}")
    elif action == "show":
        info = store.get_conversation(args.id)
        turns = store.turns(args.id)
        if args.json:
            print(json.dumps({"id": info.id, "title": info.title, "turns": [t.__dict__ for t in turns]}, indent=2, default=list))
            return 0
        ctx.console.print(f"[bold]#{info.id} {info.title}[/]", highlight=False)
        for t in turns:
            flags = []
            if t.rating:
                flags.append(f"rated {t.rating:+d}")
            if not t.complete:
                flags.append("incomplete")
            if t.abstained:
                flags.append("abstained")
            ctx.console.print(f"\n[bold cyan]turn {t.idx}[/] [dim]{t.adapter or 'base'} {' '.join(flags)}[/]\n[bold]Q:[/] {t.question}\n[bold]A:[/] {t.answer}", highlight=False)
            for n, p in enumerate(t.passages, start=1):
                ctx.console.print(f"   [dim][{n}] {p.get('title', '')} > {p.get('heading', '')}  {p.get('source', '')}[/]", highlight=False)
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
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        ctx.say(f"wrote {len(rows)} conversations to {out}")
    return 0
