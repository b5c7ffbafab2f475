"""`chatkit data synth`: checks the arguments, builds the default collections if needed, writes the files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatkit.errors import InputError


def run(ctx: Any, args: Any) -> int:
    from chatkit.retrieval.service import all_chunks, open_searcher
    from chatkit.runtime import ensure_default_collections
    from chatkit.training.synth import SynthOptions, exclusion_set, synthesize, val_path, write_rows

    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise InputError(f"--out {out} must end in .jsonl", "e.g. --out data/synth.jsonl")
    if out.exists() and not args.force:
        raise InputError(f"{out} already exists", "add --force to overwrite it, or choose another --out")
    if args.n < 1 or not 0 <= args.val_fraction < 1 or not 0 <= args.unanswerable <= 1 or not 0 <= args.multi_turn <= 1:
        raise InputError("--n must be >= 1 and --val-fraction, --unanswerable, --multi-turn between 0 and 1",
                         "e.g. --n 300 --val-fraction 0.1")
    exclude = exclusion_set([Path(p) for p in args.exclude])
    settings, paths = ctx.settings, ctx.paths
    ensure_default_collections(settings, paths, args.collection, ctx.say)
    chunks = [c for name in args.collection for c in all_chunks(settings, paths, name)]
    searcher = open_searcher(settings, paths, list(args.collection))
    options = SynthOptions(n=args.n, passages=settings.engine.passages, unanswerable=args.unanswerable,
                           multi_turn=args.multi_turn, val_fraction=args.val_fraction, seed=args.seed)
    result = synthesize(chunks, searcher, options, exclude, ctx.say)
    write_rows(out, result.train)
    if result.val:
        write_rows(val_path(out), result.val)
    summary = {"train": str(out), "train_rows": len(result.train), "val": str(val_path(out)) if result.val else None,
               "val_rows": len(result.val), "kinds": result.kinds, "candidates": result.candidates,
               "duplicates_dropped": result.duplicates, "excluded": result.excluded}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(result.kinds.items()))
        ctx.say(f"wrote {len(result.train)} conversations to {out}" + (f" and {len(result.val)} to {val_path(out)}" if result.val else "")
                + f" ({kinds}; {result.duplicates} duplicate and {result.excluded} excluded questions dropped)")
        ctx.say(f"next: `chatkit train validate {out}`, then `chatkit train sft --data {out}"
                + (f" --val {val_path(out)}`" if result.val else "`"))
    return 0
