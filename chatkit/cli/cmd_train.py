from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
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
    s.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=run_sft)


def run_validate(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.training.commands import validate_verb

    return validate_verb(ctx, args)


def run_sft(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.training.commands import sft_verb

    return sft_verb(ctx, args)
