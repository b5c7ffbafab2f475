"""The `index`, `search` and `eval retrieval` verbs: argument handling and output around the pipeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from chatkit.errors import CollectionError, InputError
from chatkit.indexing.report import Summary

DEFAULT_COLLECTION = "default"


def _reporter(ctx: Any, args: argparse.Namespace) -> Any:
    from chatkit.indexing.report import QuietReporter
    from chatkit.indexing.views import RichReporter

    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return QuietReporter(ctx.say)
    return RichReporter(ctx.err_console)


def _collection(ctx: Any, name: str | None, must_exist: bool = True) -> Any:
    from chatkit.retrieval.service import collection, missing_hint

    col = collection(ctx.settings, ctx.paths, name or DEFAULT_COLLECTION)
    if must_exist and not col.exists:
        raise CollectionError(f"collection '{col.name}' does not exist", missing_hint(col.name))
    return col


def _print_summary(ctx: Any, args: argparse.Namespace, summary: Summary) -> int:
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


def index_add(ctx: Any, args: argparse.Namespace, remove_missing: bool = False) -> int:
    from chatkit.corpus.discover import discover
    from chatkit.indexing.pipeline import run_add
    from chatkit.retrieval.service import load_embedder

    col = _collection(ctx, args.collection, must_exist=False)
    discover(args.paths, args.glob)  # a missing path fails here, before the embedder loads
    embedder = load_embedder(ctx.settings)
    reporter = _reporter(ctx, args)
    try:
        summary = run_add(ctx.settings, ctx.paths, col, embedder, args.paths, args.glob, reporter, remove_missing, ctx.say)
    finally:
        reporter.close()
        col.close()
    return _print_summary(ctx, args, summary)


def index_sync(ctx: Any, args: argparse.Namespace) -> int:
    return index_add(ctx, args, remove_missing=True)


def index_status(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing.pipeline import chunk_signature, make_plan

    col = _collection(ctx, args.collection, must_exist=False)
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
            ctx.console.print(f"[{colour}]{state:>9}[/]  {path}", highlight=False)
    ctx.console.print(f"{col.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    return 0


def index_rm(ctx: Any, args: argparse.Namespace) -> int:
    col = _collection(ctx, args.collection)
    if not args.doc_ids and not args.source:
        raise InputError("give DOC_ID... or --source PATH", "`chatkit index ls --collection NAME` lists the documents")
    embedder_dim = int(col.store.meta("dim") or 0)
    lock = col.acquire(say=ctx.say)
    try:
        col.begin_write()
        store = col.store
        if args.source:
            source = str(Path(args.source).expanduser().resolve())
            docs = store.documents(source)
            if not docs and store.source(source) is None:
                raise CollectionError(f"no document from source {args.source} in '{col.name}'", "`chatkit index ls` lists sources")
            change = store.remove_sources([source])
            removed = [d.doc_id for d in docs]
        else:
            unknown = [d for d in args.doc_ids if store.document(d) is None]
            if unknown:
                raise CollectionError(f"no document '{unknown[0]}' in collection '{col.name}'",
                                      f"`chatkit index ls --collection {col.name}` lists the doc ids")
            change = store.remove_documents(args.doc_ids)
            removed = list(args.doc_ids)
        col.finish_write([change], embedder_dim)
    finally:
        lock.release()
        col.close()
    if args.json:
        print(json.dumps({"collection": col.name, "removed": removed}))
    else:
        ctx.err_console.print(f"{col.name}: removed {len(removed)} document(s)", highlight=False)
    return 0


def _stats(col: Any) -> dict[str, Any]:
    store = col.store
    counts = store.counts()
    vectors = None
    kind = None
    fresh = col.index_files_fresh()
    if fresh:
        from chatkit.retrieval.vectors import VectorIndex

        gen = store.generation
        vi = VectorIndex.load(col.folder / f"vectors-{gen}.faiss", col.params)
        vectors, kind = vi.ntotal, vi.kind
    return {"collection": col.name, **counts, "vectors": vectors, "index": kind, "indexes_fresh": fresh,
            "embedder": store.meta("embedder"), "dim": int(store.meta("dim") or 0), "generation": store.generation,
            "size_bytes": col.size_on_disk(), "path": str(col.folder)}


def index_stats(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing.views import human_bytes
    from chatkit.retrieval.service import list_collections

    names = [args.collection] if args.collection else list_collections(ctx.paths)
    stats = []
    for name in names:
        col = _collection(ctx, name)
        stats.append(_stats(col))
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


def index_ls(ctx: Any, args: argparse.Namespace) -> int:
    from rich.table import Table

    from chatkit.retrieval.service import list_collections

    if not args.collection:
        names = list_collections(ctx.paths)
        rows = []
        for name in names:
            col = _collection(ctx, name)
            rows.append({"collection": name, **col.store.counts(), "embedder": col.store.meta("embedder")})
            col.close()
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
    col = _collection(ctx, args.collection)
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


def index_drop(ctx: Any, args: argparse.Namespace) -> int:
    col = _collection(ctx, args.collection)
    lock = col.acquire(say=ctx.say)
    try:
        counts = col.store.counts()
        col.drop()
    finally:
        lock.release()
    ctx.err_console.print(f"dropped collection '{col.name}' ({counts['documents']} documents, {counts['chunks']} chunks)",
                          highlight=False)
    return 0


def index_rebuild(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing.rebuild import rebuild
    from chatkit.retrieval.service import load_embedder

    col = _collection(ctx, args.collection)
    embedder = load_embedder(ctx.settings)
    reporter = _reporter(ctx, args)
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


def search(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing.views import hit_json, print_hits
    from chatkit.retrieval.service import list_collections, open_searcher

    names = args.collection or list_collections(ctx.paths)
    if not names:
        raise CollectionError("there are no collections to search", "build one with `chatkit index add PATH --collection NAME`")
    if args.k is not None and args.k < 1:
        raise InputError("-k must be at least 1", "e.g. -k 5")
    searcher = open_searcher(ctx.settings, ctx.paths, names)
    mode = args.mode or ctx.settings.retrieval.mode
    hits = searcher.search(args.query, k=args.k, mode=mode)
    searcher.close()
    if args.json:
        print(json.dumps({"query": args.query, "mode": mode, "collections": names, "hits": [hit_json(h) for h in hits]}, indent=2))
    else:
        print_hits(ctx.console, args.query, hits, mode)
    return 0


def eval_retrieval(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.indexing.beir import eval_retrieval as run

    modes = ("dense", "bm25", "hybrid") if args.mode == "all" else (args.mode or ctx.settings.retrieval.mode,)
    reporter = _reporter(ctx, args)
    try:
        results = run(ctx.settings, ctx.paths, Path(args.beir), args.split, modes, args.limit, reporter, ctx.say)
    finally:
        reporter.close()
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    from rich.table import Table

    first = results[0]
    table = Table("mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10",
                  title=f"{Path(args.beir).name} {first['split']}: {first['queries']} queries, {first['documents']} documents, "
                        f"{first['chunks']} chunks")
    for r in results:
        mode = r["mode"] + (f" ({r['fusion']})" if r["fusion"] else "")
        table.add_row(mode, f"{r['ndcg@10']:.4f}", f"{r['recall@10']:.4f}", f"{r['recall@100']:.4f}", f"{r['mrr@10']:.4f}")
    ctx.console.print(table)
    return 0
