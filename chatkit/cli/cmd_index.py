from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="build and maintain collections of your documents",
                       description="Build and maintain collections: Markdown, text, reStructuredText, HTML, PDF and JSONL "
                                   "files, updated incrementally by content hash.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    p.set_defaults(func=lambda ctx, args: p.print_help() or 2)

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


def run_add(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_add(ctx, args)


def run_sync(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_sync(ctx, args)


def run_status(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_status(ctx, args)


def run_rm(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_rm(ctx, args)


def run_ls(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_ls(ctx, args)


def run_stats(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_stats(ctx, args)


def run_drop(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_drop(ctx, args)


def run_rebuild(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing import verbs

    return verbs.index_rebuild(ctx, args)
