"""`chatkit ask`: one question, streamed answer, numbered sources; the turn is stored."""

from __future__ import annotations

import json
import sys
from typing import Any

from chatkit.types import Answer, Hit


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "citations": [{"n": c.n, "doc_id": c.doc_id, "title": c.title, "source": c.source} for c in answer.citations],
        "abstained": answer.abstained,
        "complete": answer.complete,
        "dropped_citations": answer.dropped_citations,
        "timings": {k: round(v, 4) for k, v in answer.timings.items()},
        "sources": [{"n": i, "doc_id": h.chunk.doc_id, "title": h.chunk.title, "heading": h.chunk.heading,
                     "source": h.chunk.source, "score": round(h.score, 4)} for i, h in enumerate(answer.hits, start=1)],
    }


def print_sources(ctx: Any, answer: Answer) -> None:
    cited = {c.n for c in answer.citations}
    hits: tuple[Hit, ...] = answer.hits
    if not hits:
        return
    title = "Closest sources (not used):" if answer.abstained else "Sources:"
    ctx.console.print(f"\n[bold]{title}[/]")
    for n, h in enumerate(hits, start=1):
        mark = "*" if n in cited else " "
        heading = f" > {h.chunk.heading}" if h.chunk.heading else ""
        ctx.console.print(f"{mark}[{n}] {h.chunk.title}{heading}  [dim]{h.chunk.source}[/]", highlight=False, markup=True)


def ask(ctx: Any, args: Any) -> int:
    from chatkit.conversations import ConversationStore, passages_from_hits
    from chatkit.engine import ChatOptions, clean_question
    from chatkit.runtime import build_engine

    settings = ctx.settings
    question, _ = clean_question(args.question, settings.engine.max_question_chars)  # before any model loads
    engine = build_engine(settings, ctx.paths, args.collection, progress=ctx.say)
    options = ChatOptions(k=args.k, mode=args.mode, adapter=args.adapter, style=args.style)
    if args.adapter is not None:
        engine.use_adapter(args.adapter)
    store = ConversationStore(ctx.paths.conversations_db)
    conv = store.new_conversation(question)
    turn_id = store.start_turn(conv, question, model=getattr(engine.generator, "model_id", ""), adapter=engine.adapter_name)
    streaming = not (args.json or args.no_stream)
    answer: Answer | None = None
    try:
        for event in engine.chat(args.question, (), options):
            if event.kind == "progress":
                ctx.say(f"[yellow]warning:[/] {event.text}")
            elif event.kind == "retrieval":
                store.set_passages(turn_id, event.hits)
            elif event.kind == "token" and streaming:
                if event.data.get("fallback"):
                    ctx.say("\n[dim](that answer cited nothing usable; the passages' closest sentences instead:)[/]")
                    sys.stdout.write(event.text.lstrip())
                else:
                    sys.stdout.write(event.text)
                sys.stdout.flush()
            elif event.kind == "error":
                ctx.say(f"[red]error:[/] {event.text}")
            elif event.kind == "answer":
                answer = event.answer
    except KeyboardInterrupt:
        store.finish_turn(turn_id, "", complete=False)
        raise
    assert answer is not None
    store.finish_turn(turn_id, answer.text, answer.abstained, answer.timings, answer.complete,
                      passages=passages_from_hits(answer.hits))
    if args.json:
        print(json.dumps(answer_json(answer) | {"conversation": conv}, indent=2))
        return 0
    if streaming:
        sys.stdout.write("\n")
    else:
        print(answer.text)
    print_sources(ctx, answer)
    t = answer.timings
    if "tokens_per_s" in t:
        ctx.say(f"[dim]retrieval {t['retrieval_s'] * 1000:.0f} ms, first token {t.get('prefill_s', 0):.2f} s, "
                f"{t['tokens_per_s']:.1f} tok/s, total {t['total_s']:.1f} s[/]")
    return 0
