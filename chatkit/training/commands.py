"""What `chatkit train validate` and `chatkit train sft` do and print (the CLI calls these lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatkit.errors import DataError


def validate_verb(ctx: Any, args: Any) -> int:
    from chatkit.training.base import load_tokenizer, resolve_base
    from chatkit.training.rows import require_file
    from chatkit.training.validate import print_report, validate_file

    path = Path(args.file)
    max_length = ctx.settings.training.max_length
    require_file(path)  # before loading the tokenizer, so a typo fails fast
    tokenizer = load_tokenizer(resolve_base(ctx.settings, ctx.paths, ctx.say))
    report = validate_file(path, tokenizer, max_length)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_report(ctx.console, report, tokenizer)
    if not report.prepared.examples:
        raise DataError(f"{path}: no row fits training.max_length={max_length}", "raise training.max_length")
    return 0 if report.ok else 1


def sft_verb(ctx: Any, args: Any) -> int:
    from chatkit.training.sft import SftRequest, run_sft

    req = SftRequest(Path(args.data), Path(args.val) if args.val else None, args.name, args.resume, args.max_steps)
    result = run_sft(ctx.settings, ctx.paths, req, ctx.err_console, ctx.say)
    if result.interrupted:
        where = result.checkpoint.name if result.checkpoint else "no checkpoint"
        ctx.say(f"interrupted: saved {where}; continue with `chatkit train sft --data {args.data} --name {result.name} --resume`")
        return 130
    m = result.metrics
    if args.json:
        print(json.dumps({"name": result.name, "path": str(result.path), "metrics": m}, indent=2))
        return 0
    val = f", val loss {m['val_loss']:.4f}, perplexity {m['val_perplexity']:.2f}" if "val_loss" in m else ""
    ctx.say(f"adapter '{result.name}' -> {result.path}\n  {m['steps']} steps, train loss {m['train_loss']:.4f}{val}, "
            f"{m['tokens_per_s']:.0f} tokens/s, {m['train_seconds']:.0f} s")
    ctx.say(f"next: `chatkit eval compare {result.name}`, then `chatkit adapters promote {result.name}`")
    return 0
