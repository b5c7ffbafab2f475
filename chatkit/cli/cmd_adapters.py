from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("adapters", parents=[common], help="the adapter registry",
                       description="List, inspect, promote, roll back, remove and export fine-tuned LoRA adapters.")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB", required=True)
    ls = ss.add_parser("ls", parents=[common], help="list adapters, the default marked *")
    ls.add_argument("--json", action="store_true")
    show = ss.add_parser("show", parents=[common], help="an adapter's base model, data, config and metrics")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    promote = ss.add_parser("promote", parents=[common], help="make an adapter the default (needs an eval comparison)",
                            description="Make NAME the default adapter. Refused unless `chatkit eval compare NAME` found it "
                            "better than the current default, or --force.")
    promote.add_argument("name")
    promote.add_argument("--force", action="store_true", help="promote without (or against) the evaluation verdict")
    ss.add_parser("rollback", parents=[common], help="restore the default before the last promotion")
    rm = ss.add_parser("rm", parents=[common], help="delete an adapter")
    rm.add_argument("name")
    export = ss.add_parser("export", parents=[common], help="copy an adapter out, or merge it into the base model",
                           description="Copy the PEFT adapter folder to DIR, or with --merged write the base model with the "
                           "adapter merged in, after checking merged logits equal adapter logits (max abs diff <= 1e-3, fp32). "
                           "With --gguf write the merged model as one GGUF file for llama.cpp and ollama (chat template in "
                           "its metadata), checked against the merged model's next-token choices when llama-cpp-python is installed.")
    export.add_argument("name")
    dest = export.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", metavar="DIR", help="folder to create")
    dest.add_argument("--gguf", metavar="FILE", help="GGUF file to create: the base model with the adapter merged in")
    export.add_argument("--merged", action="store_true", help="merge into the base model (a plain Hugging Face model folder)")
    export.add_argument("--quant", choices=["f16", "q8_0", "q4_0", "f32"], default="q8_0",
                        help="tensor type of the --gguf file (default q8_0; norms stay f32)")
    for parser, action in ((ls, "ls"), (show, "show"), (promote, "promote"), (ss.choices["rollback"], "rollback"),
                           (rm, "rm"), (export, "export")):
        parser.set_defaults(func=run, action=action)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.training.adapter_verbs import run as run_verb

    return run_verb(ctx, args)
