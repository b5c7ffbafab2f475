"""`chatkit index add|sync|status|rm|ls|stats|drop|rebuild`: arguments and output around chatkit.indexing."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from chatkit.cli.context import show_help
from chatkit.terminal_text import markup_safe

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers
    from chatkit.indexing.report import Summary


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="build and maintain collections of your documents",
                       description="Build and maintain collections: Markdown, text, reStructuredText, HTML, PDF and JSONL "
                                   "files, updated incrementally by content hash.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    p.set_defaults(func=lambda ctx, args: show_help(p))

    def collection_arg(sp: argparse.ArgumentParser, required: bool = False) -> None:
        sp.add_argument("--collection", "-c", metavar="NAME", required=required,
                        help="collection name" + ("" if required else " (default: 'default')"))

    def json_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    for name, help_text in (("add", "add or update files and folders (recursive)"),
                            ("sync", "like add, and also remove documents whose files are gone")):
        sp = ss.add_parser(name, parents=[common], help=help_text, description=help_text)
        sp.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
        collection_arg(sp)
        sp.add_argument("--glob", metavar="PATTERN", help="only files whose path (relative to the folder) or name matches, e.g. '*.md'")
        json_arg(sp)
        sp.set_defaults(func=run_sync if name == "sync" else run_add)

    sp = ss.add_parser("status", parents=[common], help="show new, changed, unchanged and missing files without writing")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    collection_arg(sp)
    sp.add_argument("--glob", metavar="PATTERN")
    sp.add_argument("--all", action="store_true", help="list unchanged files too")
    json_arg(sp)
    sp.set_defaults(func=run_status)

    sp = ss.add_parser("rm", parents=[common], help="remove documents by doc id, or every document of a source file")
    sp.add_argument("doc_ids", nargs="*", metavar="DOC_ID")
    sp.add_argument("--source", metavar="PATH", help="remove the documents read from this file")
    collection_arg(sp)
    json_arg(sp)
    sp.set_defaults(func=run_rm)

    sp = ss.add_parser("ls", parents=[common], help="list collections, or the documents of one")
    collection_arg(sp)
    json_arg(sp)
    sp.set_defaults(func=run_ls, collection=None)

    sp = ss.add_parser("stats", parents=[common], help="documents, chunks, vectors, embedder and size on disk")
    collection_arg(sp)
    json_arg(sp)
    sp.set_defaults(func=run_stats)

    sp = ss.add_parser("drop", parents=[common], help="delete a collection")
    collection_arg(sp, required=True)
    sp.set_defaults(func=run_drop)

    sp = ss.add_parser("rebuild", parents=[common], help="re-embed with the configured embedder and rebuild the indexes")
    collection_arg(sp)
    json_arg(sp)
    sp.set_defaults(func=run_rebuild)


def run_add(ctx: Context, args: argparse.Namespace, remove_missing: bool = False) -> int:
    from chatkit.indexing.manage import open_collection
    from chatkit.indexing.pipeline import run_add as add
    from chatkit.retrieval.service import load_embedder

    check_collection_name(args)
    files_to_index(args)  # a missing path or a glob matching nothing fails here, before the embedder loads
    col = open_collection(ctx.settings, ctx.paths, args.collection, must_exist=False)
    embedder = load_embedder(ctx.settings)
    reporter = ctx.reporter(quiet=args.json)
    try:
        summary = add(ctx.settings, ctx.paths, col, embedder, args.paths, args.glob, reporter, remove_missing, ctx.say)
    finally:
        reporter.close()
        col.close()
    return _print_summary(ctx, args, summary)


def check_collection_name(args: argparse.Namespace) -> None:
    """`-c ""` must not quietly mean the default collection."""
    from chatkit.errors import InputError

    name = getattr(args, "collection", None)
    if name is not None and not name.strip():
        raise InputError("--collection must not be empty", "give a name like -c notes, or leave -c out for 'default'")
    if name is not None:
        from chatkit.retrieval.collection import check_name

        check_name(name)


def check_glob(pattern: str | None) -> None:
    """An unclosed '[' makes fnmatch match it literally, so '--glob "["' would quietly match nothing."""
    from chatkit.errors import InputError

    if pattern is None:
        return
    if not pattern.strip():
        raise InputError("--glob must not be empty", "e.g. --glob '*.md'")
    i = 0
    while (start := pattern.find("[", i)) >= 0:
        j = start + 1
        j += pattern[j : j + 1] == "!"
        j += pattern[j : j + 1] == "]"  # a ']' first in a set is a member, not its end
        close = pattern.find("]", j)
        if close < 0:
            raise InputError(f"--glob {pattern!r} is not a valid pattern: the '[' at position {start + 1} is never closed",
                             "close the set ('[ab]*.md') or drop the '['")
        i = close + 1


def files_to_index(args: argparse.Namespace) -> None:
    from chatkit.corpus.discover import discover
    from chatkit.errors import InputError

    check_glob(args.glob)
    found = discover(args.paths, args.glob)  # a missing path fails here
    if args.glob and not any(f.kind for f in found):
        raise InputError(f"no supported file under {', '.join(args.paths)} matches --glob {args.glob!r}",
                         "the pattern is matched against the path relative to each folder and against the file name, e.g. '*.md'")


def run_sync(ctx: Context, args: argparse.Namespace) -> int:
    return run_add(ctx, args, remove_missing=True)


def _print_summary(ctx: Context, args: argparse.Namespace, summary: Summary) -> int:
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        style = "red" if summary.failed else "green"
        ctx.err_console.print(f"[{style}]{summary.line()}[/]", highlight=False)
        for reason in summary.failures[:20]:
            ctx.err_console.print(f"  failed: {reason}", highlight=False, markup=False)
        if len(summary.failures) > 20:
            ctx.err_console.print(f"  ... and {len(summary.failures) - 20} more", highlight=False)
    return 1 if summary.failed else 0


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.indexing.manage import open_collection
    from chatkit.indexing.pipeline import chunk_signature, make_plan

    check_collection_name(args)
    files_to_index(args)
    # An unknown collection is an error, not an empty listing (and `status` must not create it).
    col = open_collection(ctx.settings, ctx.paths, args.collection)
    plan = make_plan(col, args.paths, args.glob, chunk_signature(ctx.settings))
    col.close()
    rows = [(f.state, str(f.found.path)) for f in plan.files] + [("missing", s) for s in plan.missing]
    counts = {s: sum(1 for r in rows if r[0] == s) for s in ("new", "changed", "unchanged", "missing")}
    if args.json:
        print(json.dumps({"collection": col.name, **counts, "files": [{"state": s, "path": p} for s, p in rows]}, indent=2))
        return 0
    for state, path in rows:
        if state != "unchanged" or args.all:
            colour = {"new": "green", "changed": "yellow", "missing": "red"}.get(state, "dim")
            ctx.console.print(f"[{colour}]{state:>9}[/]  {markup_safe(path, one_line=True)}", highlight=False)
    ctx.console.print(f"{col.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    return 0


def run_rm(ctx: Context, args: argparse.Namespace) -> int:
    check_collection_name(args)
    from chatkit.indexing.manage import open_collection, remove_documents

    col = open_collection(ctx.settings, ctx.paths, args.collection)
    try:
        removed = remove_documents(col, args.doc_ids, args.source, ctx.say)
    finally:
        col.close()
    if args.json:
        print(json.dumps({"collection": col.name, "removed": removed}))
    else:
        ctx.err_console.print(f"{col.name}: removed {len(removed)} document(s)", highlight=False)
    return 0


def run_stats(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.cli.progress import human_bytes
    from chatkit.indexing.manage import collection_stats, open_collection
    from chatkit.retrieval.service import list_collections

    check_collection_name(args)
    names = [args.collection] if args.collection is not None else list_collections(ctx.paths)
    stats = []
    for name in names:
        col = open_collection(ctx.settings, ctx.paths, name)
        try:
            stats.append(collection_stats(col))
        finally:
            col.close()
    if args.json:
        print(json.dumps(stats if not args.collection else stats[0], indent=2))
        return 0
    if not stats:
        ctx.console.print("no collections yet (hint: chatkit index add PATH --collection NAME)")
    for s in stats:
        vec = f"{s['vectors']} vectors ({s['index']})" if s["vectors"] is not None else "vectors: stale, rebuilt on next use"
        ctx.console.print(f"[bold]{s['collection']}[/]: {s['documents']} documents, {s['chunks']} chunks, {vec}, "
                          f"embedder {s['embedder']} (dim {s['dim']}), {human_bytes(s['size_bytes'])} on disk", highlight=False)
    return 0


def run_ls(ctx: Context, args: argparse.Namespace) -> int:
    from rich.table import Table

    from chatkit.indexing.manage import collection_rows, open_collection

    check_collection_name(args)
    if args.collection is None:
        rows = collection_rows(ctx.settings, ctx.paths)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            ctx.console.print("no collections yet (hint: chatkit index add PATH --collection NAME)")
        else:
            table = Table("collection", "documents", "chunks", "sources", "embedder")
            for r in rows:
                table.add_row(r["collection"], str(r["documents"]), str(r["chunks"]), str(r["sources"]), str(r["embedder"]))
            ctx.console.print(table)
        return 0
    col = open_collection(ctx.settings, ctx.paths, args.collection)
    docs = col.store.documents()
    col.close()
    if args.json:
        print(json.dumps([{"doc_id": d.doc_id, "title": d.title, "chunks": d.n_chunks, "source": d.source} for d in docs], indent=2))
        return 0
    table = Table("doc id", "title", "chunks", "source", title=f"{col.name}: {len(docs)} documents")
    for d in docs:
        table.add_row(d.doc_id, d.title[:60], str(d.n_chunks), d.source)
    ctx.console.print(table)
    return 0


def run_drop(ctx: Context, args: argparse.Namespace) -> int:
    check_collection_name(args)
    from chatkit.indexing.manage import drop_collection, open_collection

    col = open_collection(ctx.settings, ctx.paths, args.collection)
    counts = drop_collection(col, ctx.say)
    ctx.err_console.print(f"dropped collection '{col.name}' ({counts['documents']} documents, {counts['chunks']} chunks)",
                          highlight=False)
    return 0


def run_rebuild(ctx: Context, args: argparse.Namespace) -> int:
    check_collection_name(args)
    from chatkit.indexing.manage import open_collection
    from chatkit.indexing.rebuild import rebuild
    from chatkit.retrieval.service import load_embedder

    col = open_collection(ctx.settings, ctx.paths, args.collection)
    embedder = load_embedder(ctx.settings)
    reporter = ctx.reporter(quiet=args.json)
    try:
        out = rebuild(ctx.paths, col, embedder, reporter, ctx.say)
    finally:
        reporter.close()
        col.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        ctx.err_console.print(f"{out['collection']}: rebuilt {out['chunks']} chunks with {out['embedder']} "
                              f"({out['embedded']} embedded, {out['cached']} from cache) in {out['seconds']} s", highlight=False)
    return 0
