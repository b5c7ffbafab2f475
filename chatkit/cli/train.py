"""`chatkit train validate|sft`: check training data, fine-tune with LoRA (drawing its progress), print the result."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chatkit.cli import argtypes

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.text import Text

    from chatkit.cli.context import Context, Subparsers
    from chatkit.training.masking import Encoded
    from chatkit.training.validate import Report


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="validate data and fine-tune with LoRA",
                       description="Check training data, then fine-tune the dialogue model with TRL SFT + LoRA on the assistant's turns only.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    v = ss.add_parser("validate", parents=[common], help="check a JSONL file and show what will be trained",
                      description="Detect the format (OpenAI messages, ShareGPT, Alpaca, RAG), report bad rows by line, "
                      "token lengths against training.max_length, and render one row with its trained tokens.")
    v.add_argument("file", help="JSONL training file")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=run_validate)
    s = ss.add_parser("sft", parents=[common], help="fine-tune with TRL SFT + LoRA into a new adapter",
                      description="Train a LoRA adapter on the assistant's turns and add it to the adapter registry. "
                      "Ctrl-C stops after the current step with a checkpoint; --resume continues it.")
    s.add_argument("--data", required=True, metavar="FILE", help="JSONL training file")
    s.add_argument("--val", metavar="FILE", help="JSONL validation file (default: hold out training.val_fraction)")
    s.add_argument("--name", metavar="NAME", help="adapter name (default: sft-DATE-TIME)")
    s.add_argument("--resume", action="store_true", help="continue the interrupted run NAME (or the latest one)")
    s.add_argument("--max-steps", type=argtypes.positive_int, metavar="N", help="stop after N optimizer steps")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=run_sft)


def run_validate(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.errors import DataError
    from chatkit.training.base import load_tokenizer, resolve_base
    from chatkit.training.rows import require_file
    from chatkit.training.validate import validate_file

    path = Path(args.file)
    max_length = ctx.settings.training.max_length
    require_file(path)  # before loading the tokenizer, so a typo fails fast
    tokenizer = load_tokenizer(resolve_base(ctx.settings, ctx.paths, ctx.say))
    report = validate_file(path, tokenizer, max_length)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_report(ctx.console, report)
    if not report.prepared.examples:
        raise DataError(f"{path}: no row fits training.max_length={max_length}", "raise training.max_length")
    return 0 if report.ok else 1


def run_sft(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training.sft import SftRequest, run_sft

    req = SftRequest(Path(args.data), Path(args.val) if args.val else None, args.name, args.resume, args.max_steps)
    progress = RichTrainingProgress(ctx.err_console)
    try:
        result = run_sft(ctx.settings, ctx.paths, req, progress, ctx.say)
    finally:
        progress.finished()  # a second Ctrl-C or an error skips the trainer's end: still leave the terminal tidy
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


class RichTrainingProgress:
    """A bar on a terminal (loss, tokens/s, ETA); a log file or pipe gets a `step N/M` line every
    CHATKIT_PROGRESS_EVERY_S seconds (30; tests set 0) instead. Validation lines go to both."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.every_s = float(os.environ.get("CHATKIT_PROGRESS_EVERY_S", "30"))
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.last_line = 0.0

    def started(self, total_steps: int, done_steps: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.last_line = time.perf_counter()
        self.progress = Progress(
            TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=done_steps, loss="-", tps="-")

    def step(self, step: int, total: int, loss: float, tokens_per_s: float, eta_s: float) -> None:
        if self.progress is None or self.task is None:
            return
        loss_text = "-" if math.isnan(loss) else f"{loss:.3f}"
        self.progress.update(self.task, completed=step, loss=loss_text, tps=f"{tokens_per_s:,.0f}")
        # A log file or pipe gets no live bar, so it gets a line every half minute instead.
        if not self.console.is_terminal and time.perf_counter() - self.last_line >= self.every_s:
            self.last_line = time.perf_counter()
            self.console.print(f"step {step}/{total}: loss {loss_text}, {tokens_per_s:,.0f} tok/s, "
                               f"ETA {eta_s / 60:.0f} min", highlight=False)

    def epoch(self, row: dict[str, float]) -> None:
        self.console.print(f"epoch {row['epoch']:g}: val loss {row['val_loss']:.4f}, perplexity {row['perplexity']:.2f}",
                           highlight=False)

    def finished(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def print_report(console: Console, report: Report) -> None:
    from chatkit.terminal_text import markup_safe
    from chatkit.training.prepare import lines_text

    loaded, p = report.loaded, report.prepared
    formats = ", ".join(f"{k} {v}" for k, v in sorted(loaded.formats.items()))
    bad = report.bad_rows
    console.print(f"[bold]{markup_safe(str(loaded.path), one_line=True)}[/]: {len(loaded.rows) + len(loaded.errors)} rows ({formats}), "
                  f"{len(p.examples)} usable, {len(bad)} bad", highlight=False)
    for line, msg in bad[:50]:
        console.print(f"  [red]line {line}[/]: {markup_safe(msg, one_line=True)}", highlight=False)
    if len(bad) > 50:
        console.print(f"  ... and {len(bad) - 50} more")
    if loaded.duplicates:
        console.print(f"  [yellow]{len(loaded.duplicates)} duplicate rows[/] (lines {lines_text(loaded.duplicates)}): "
                      "they are trained more than once", highlight=False)
    stats = p.length_stats()
    if stats:
        console.print(f"tokens per row (max_length {report.max_length}): min {stats['min']}, median {stats['median']}, "
                      f"p95 {stats['p95']}, max {stats['max']}", highlight=False)
    if p.trimmed:
        console.print(f"  {len(p.trimmed)} rows over max_length fit after trimming passages (lines {lines_text(p.trimmed)})", highlight=False)
    if p.too_long:
        worst = ", ".join(f"{n} ({t} tokens)" for n, t in p.too_long[:10])
        console.print(f"  [yellow]{len(p.too_long)} rows do not fit even with passages trimmed and will be skipped[/]: "
                      f"lines {worst}; raise training.max_length or shorten them", highlight=False)
    total = sum(len(e) for e in p.examples)
    if total:
        console.print(f"trained tokens: {p.trained_tokens} of {total} ({100 * p.trained_tokens / total:.0f}%), "
                      f"the assistant's turns only", highlight=False)
    if report.end_of_turn:
        console.print(f"assistant turns end with {report.end_of_turn!r}, which is trained so the model learns to stop", highlight=False)
    else:
        console.print("[yellow]the chat template puts no end-of-turn token after the assistant's words: "
                      "the model will not learn to stop[/]")
    if p.examples:
        console.print(f"\n[bold]line {p.lines[0]} as the model sees it[/] ([green]green[/] = trained, dim = context only):")
        console.print(example_text(p.examples[0]))


def example_text(example: Encoded, keep: int = 300) -> Text:
    """The rendered row, trained characters in green; long context runs are shortened in the middle."""
    from rich.text import Text

    from chatkit.training.masking import IGNORE

    trained = [False] * len(example.text)
    for (start, end), label in zip(example.offsets, example.labels, strict=True):
        if label != IGNORE:
            trained[start:end] = [True] * (end - start)
    out = Text()
    i = 0
    while i < len(example.text):
        j = i
        while j < len(example.text) and trained[j] == trained[i]:
            j += 1
        piece = example.text[i:j]
        if not trained[i] and len(piece) > 2 * keep + 40:
            piece = f"{piece[:keep]}\n  [... {len(piece) - 2 * keep} characters ...]\n{piece[-keep:]}"
        out.append(piece, style="bold green" if trained[i] else "dim")
        i = j
    return out
