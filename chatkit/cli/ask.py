"""`chatkit ask`: one question, streamed answer, numbered sources; the turn is stored (chatkit/recording.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from chatkit.cli import argtypes
from chatkit.terminal_text import markup_safe, printable

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers
    from chatkit.types import Answer


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common], help="ask one question, get a cited answer",
                       description="Retrieve passages, stream a grounded answer citing them as [n], then list the sources.")
    p.add_argument("question", help="the question (quote it)")
    p.add_argument("--collection", action="append", metavar="NAME", help="collection to search (repeatable; default: engine.collections)")
    p.add_argument("--adapter", metavar="NAME", help="adapter to answer with, or 'base' for none")
    p.add_argument("-k", type=argtypes.like_key("engine.passages"), metavar="N", help="passages to give the model (default: engine.passages)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default: retrieval.mode)")
    p.add_argument("--style", choices=["auto", "generative", "extractive"], help="answer style (default: engine.answer_style)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    p.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.assembly import build_engine
    from chatkit.conversations import ConversationStore
    from chatkit.engine import ChatOptions, clean_question
    from chatkit.recording import TurnRecording

    settings = ctx.settings
    clean_question(args.question, settings.engine.max_question_chars)  # refuse an empty question before any model loads
    engine = build_engine(settings, ctx.paths, args.collection, progress=ctx.say)
    for skipped in engine.searcher.skipped:
        ctx.say(f"warning: {printable(skipped.message, one_line=True)}")
    options = ChatOptions(k=args.k, mode=args.mode, adapter=args.adapter, style=args.style)
    store = ConversationStore(ctx.paths.conversations_db)
    streaming = not (args.json or args.no_stream)
    failed = ""  # a generation error is printed where it happens and makes the exit code 1
    with sigterm_as_interrupt():
        recording = TurnRecording(engine, store, args.question, options, source="cli")
        with recording:
            for event in recording.stream():
                if event.kind == "progress":
                    ctx.say(f"[yellow]warning:[/] {markup_safe(event.text)}")
                elif event.kind == "token" and streaming:
                    if event.data.get("fallback"):
                        ctx.say("\n[dim](that answer cited nothing usable; the passages' closest sentences instead:)[/]")
                        sys.stdout.write(printable(event.text.lstrip()))
                    else:
                        sys.stdout.write(printable(event.text))
                    sys.stdout.flush()
                elif event.kind == "error":
                    failed = event.text
                    ctx.say(f"[red]error:[/] {markup_safe(event.text)}")
    answer = recording.answer
    assert answer is not None
    if args.json:
        extra = {"conversation": recording.conversation_id} | ({"error": failed} if failed else {})
        print(json.dumps(answer_json(answer) | extra, indent=2))
        return 1 if failed else 0
    if streaming:
        sys.stdout.write("\n")
    else:
        print(printable(answer.text))
    print_sources(ctx, answer)
    t = answer.timings
    if "tokens_per_s" in t:
        ctx.say(f"[dim]retrieval {t['retrieval_s'] * 1000:.0f} ms, first token {t.get('prefill_s', 0):.2f} s, "
                f"{t['tokens_per_s']:.1f} tok/s, total {t['total_s']:.1f} s[/]")
    return 1 if failed else 0


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a killed terminal, `timeout`, a service manager) ends the answer as Ctrl-C does, so the
    partial answer is stored rather than lost with the process."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def print_sources(ctx: Context, answer: Answer) -> None:
    cited = {c.n for c in answer.citations}
    if not answer.hits:
        return
    title = "Closest sources (not used):" if answer.abstained else "Sources:"
    ctx.console.print(f"\n[bold]{title}[/]")
    for n, h in enumerate(answer.hits, start=1):
        mark = "*" if n in cited else " "
        heading = f" > {markup_safe(h.chunk.heading, one_line=True)}" if h.chunk.heading else ""
        ctx.console.print(f"{mark}[{n}] {markup_safe(h.chunk.title, one_line=True)}{heading}  "
                          f"[dim]{markup_safe(h.chunk.source, one_line=True)}[/]", highlight=False, markup=True)
