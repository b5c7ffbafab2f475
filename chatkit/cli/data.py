"""`chatkit data synth`: checks the arguments, builds the default collections if needed, writes the files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatkit.cli import argtypes

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("data", parents=[common], help="make training data from a collection",
                       description="Make grounded training conversations from your collections, without a large model.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    s = ss.add_parser("synth", parents=[common], help="synthesize grounded RAG conversations from a collection",
                      description="Questions from headings, definition sentences, casual and misspelt rewordings, two-part "
                                  "questions, comparisons and resource lists; answers quote the supporting passages part "
                                  "by part with [n] citations among retrieved distractor passages; some unanswerable questions "
                                  "(answered with the abstention text) and two-turn follow-ups; duplicates dropped; whole "
                                  "documents split into FILE and FILE's .val.jsonl sibling.")
    s.add_argument("--collection", action="append", required=True, metavar="NAME", help="collection to draw from (repeat for more)")
    s.add_argument("--out", required=True, metavar="FILE", help="training JSONL to write (validation goes to FILE.val.jsonl)")
    s.add_argument("--n", type=argtypes.positive_int, default=300, metavar="N", help="conversations to make (default: 300)")
    s.add_argument("--val-fraction", type=argtypes.fraction_below_one, default=0.1, metavar="F", help="share of documents held out for validation (default: 0.1)")
    s.add_argument("--unanswerable", type=argtypes.fraction, default=0.15, metavar="F", help="share of unanswerable questions (default: 0.15)")
    s.add_argument("--multi-turn", type=argtypes.fraction, default=0.2, metavar="F", help="share of two-turn conversations (default: 0.2)")
    s.add_argument("--evidence-sentences", type=argtypes.like_key("engine.evidence_sentences"), default=3, metavar="N",
                   help="sentences shown of each passage, as the engine shows them (default: 3; 0 = whole passages)")
    s.add_argument("--exclude", action="append", default=[], metavar="FILE",
                   help="QA or conversation JSONL whose questions must not appear (e.g. corpora/qa/test.jsonl; repeat for corpora/qa/dev.jsonl)")
    s.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default: 0)")
    s.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=run_synth)


def run_synth(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.assembly import ensure_default_collections
    from chatkit.cli.paths import writable_output
    from chatkit.errors import InputError
    from chatkit.retrieval.service import all_chunks, load_embedder, open_searcher
    from chatkit.training.synth import (
        RememberingEmbedder,
        SynthOptions,
        exclusion_set,
        synthesize,
        val_path,
        write_rows,
    )

    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise InputError(f"--out {out} must end in .jsonl", "e.g. --out data/synth.jsonl")
    out = writable_output(out, "--out")  # its .val.jsonl sibling goes into the same folder
    if out.exists() and not args.force:
        raise InputError(f"{out} already exists", "add --force to overwrite it, or choose another --out")
    if args.evidence_sentences < 0:
        raise InputError("--evidence-sentences must be >= 0", "e.g. --evidence-sentences 3, or 0 for whole passages")
    if args.n < 1 or not 0 <= args.val_fraction < 1 or not 0 <= args.unanswerable <= 1 or not 0 <= args.multi_turn <= 1:
        raise InputError("--n must be >= 1 and --val-fraction, --unanswerable, --multi-turn between 0 and 1",
                         "e.g. --n 300 --val-fraction 0.1")
    exclude = exclusion_set([Path(p) for p in args.exclude])
    settings, paths = ctx.settings, ctx.paths
    ensure_default_collections(settings, paths, args.collection, ctx.say)
    chunks = [c for name in args.collection for c in all_chunks(settings, paths, name)]
    # Duck-typed: it forwards everything but encode to the embedder it wraps.
    remembering: Any = RememberingEmbedder(load_embedder(settings))
    searcher = open_searcher(settings, paths, list(args.collection), remembering)
    options = SynthOptions(n=args.n, passages=settings.engine.passages, unanswerable=args.unanswerable,
                           multi_turn=args.multi_turn, val_fraction=args.val_fraction, seed=args.seed,
                           evidence_sentences=args.evidence_sentences)
    result = synthesize(chunks, searcher, options, exclude, ctx.say)
    write_rows(out, result.train)
    if result.val:
        write_rows(val_path(out), result.val)
    summary = {"train": str(out), "train_rows": len(result.train), "val": str(val_path(out)) if result.val else None,
               "val_rows": len(result.val), "kinds": result.kinds, "candidates": result.candidates,
               "duplicates_dropped": result.duplicates, "excluded": result.excluded,
               "straddling_dropped": result.straddling}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(result.kinds.items()))
        ctx.say(f"wrote {len(result.train)} conversations to {out}" + (f" and {len(result.val)} to {val_path(out)}" if result.val else "")
                + f" ({kinds}; {result.duplicates} duplicate and {result.excluded} excluded questions dropped)")
        ctx.say(f"next: `chatkit train validate {out}`, then `chatkit train sft --data {out}"
                + (f" --val {val_path(out)}`" if result.val else "`"))
    return 0
