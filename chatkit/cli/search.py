"""`chatkit search`: ranked passages as highlighted snippets or JSON."""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

from chatkit.cli import argtypes
from chatkit.terminal_text import printable

if TYPE_CHECKING:
    from rich.console import Console

    from chatkit.cli.context import Context, Subparsers
    from chatkit.types import Hit


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search a collection",
                       description="Ranked passages with score, title, source, heading and a highlighted snippet.")
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", type=argtypes.like_key("retrieval.k"), default=None, help="number of hits (default: retrieval.k)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default=None, help="default: retrieval.mode (hybrid)")
    p.add_argument("--collection", "-c", action="append", metavar="NAME", help="collection to search (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.errors import CollectionError, InputError
    from chatkit.retrieval.service import list_collections, open_searcher

    names = args.collection or list_collections(ctx.paths)
    if not names:
        raise CollectionError("there are no collections to search", "build one with `chatkit index add PATH --collection NAME`")
    if not args.query.strip():
        raise InputError("the query is empty", 'e.g. chatkit search "low-rank adapters"')
    searcher = open_searcher(ctx.settings, ctx.paths, names)
    for skipped in searcher.skipped:
        ctx.say(f"warning: {printable(skipped.message, one_line=True)}")
    mode = args.mode or ctx.settings.retrieval.mode
    hits = searcher.search(args.query, k=args.k, mode=mode)
    searcher.close()
    if args.json:
        print(json.dumps({"query": args.query, "mode": mode, "collections": names, "hits": [hit_json(h) for h in hits]}, indent=2))
    else:
        print_hits(ctx.console, args.query, hits, mode)
    return 0


def snippet(text: str, terms: list[str], width: int = 240) -> tuple[str, list[tuple[int, int]]]:
    """A window of `text` around the first matching word, and the spans of every match inside it."""
    flat = " ".join(text.split())
    pattern = _terms_pattern(terms)
    first = pattern.search(flat) if pattern else None
    start = max(0, (first.start() if first else 0) - width // 3)
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    window = flat[start : start + width]
    prefix = "…" if start else ""
    suffix = "…" if start + width < len(flat) else ""
    spans = [(m.start() + len(prefix), m.end() + len(prefix)) for m in pattern.finditer(window)] if pattern else []
    return f"{prefix}{window}{suffix}", spans


def _terms_pattern(terms: list[str]) -> re.Pattern[str] | None:
    words = sorted({t for t in terms if len(t) > 1}, key=len, reverse=True)
    if not words:
        return None
    # Stems match the start of a word: 'run' highlights 'running'.
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\w*", re.IGNORECASE)


def query_words(query: str) -> list[str]:
    from chatkit.retrieval.lexical import analyze

    stems = set(analyze(query))
    # Highlight the query's own words and their stems, but not its stopwords.
    return sorted({w for w in re.findall(r"\w\w+", query.lower()) if analyze(w)} | stems)


def print_hits(console: Console, query: str, hits: list[Hit], mode: str) -> None:
    from rich.text import Text

    if not hits:
        console.print("no results")
        return
    terms = query_words(query)
    for hit in hits:
        c = hit.chunk
        head = Text()
        head.append(f"{hit.rank:>2}. ", style="bold")
        head.append(printable(c.title or c.doc_id, one_line=True), style="bold cyan")
        scores = f"  score {hit.score:.4f}"
        if hit.dense_score is not None:
            scores += f"  cos {hit.dense_score:.3f}"
        if hit.bm25_score is not None:
            scores += f"  bm25 {hit.bm25_score:.2f}"
        head.append(scores, style="dim")
        console.print(head)
        where = f"{c.source}" + (f"  p.{c.page}" if c.page else "") + f"  [{hit.collection}] {c.doc_id}#{c.ordinal}"
        console.print(Text("    " + printable(where, one_line=True), style="green"))
        if c.heading:
            console.print(Text("    § " + printable(c.heading, one_line=True), style="magenta"))
        text, spans = snippet(printable(c.text, one_line=True), terms)
        body = Text("    " + text)
        for a, b in spans:
            body.stylize("bold yellow", a + 4, b + 4)
        console.print(body)
        console.print()


def hit_json(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {"rank": hit.rank, "score": hit.score, "dense_score": hit.dense_score, "bm25_score": hit.bm25_score,
            "collection": hit.collection, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "ordinal": c.ordinal,
            "title": c.title, "source": c.source, "heading": list(c.heading_path), "page": c.page,
            "char_start": c.char_start, "char_end": c.char_end, "text": c.text}
