"""`chatkit adapters ls|show|promote|rollback|rm|export`: the adapter registry, printed."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatkit.cli.paths import writable_output
from chatkit.errors import AdapterError, InputError

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers
    from chatkit.training.base import BaseModel
    from chatkit.training.registry import AdapterInfo


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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


def run(ctx: Context, args: argparse.Namespace) -> int:
    action: Callable[[Context, argparse.Namespace], int] = {"ls": _ls, "show": _show, "promote": _promote, "rollback": _rollback, "rm": _rm, "export": _export}[args.action]
    return action(ctx, args)


def _metric(meta: dict[str, Any], key: str, fmt: str) -> str:
    value = meta.get("metrics", {}).get(key)
    return format(value, fmt) if isinstance(value, int | float) else "-"


def _ls(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry

    paths = ctx.paths
    default = registry.default_adapter(paths)
    adapters = registry.list_adapters(paths)
    if args.json:
        print(json.dumps([{"name": a.name, "default": a.name == default, "problem": a.problem, "base_model": a.meta.get("base_model"),
                           "created": a.meta.get("created"), "metrics": a.meta.get("metrics", {})} for a in adapters], indent=2))
        return 0
    if not adapters:
        ctx.say("no adapters yet: `chatkit train sft --data FILE --name NAME` makes one")
        return 0
    from rich.table import Table

    table = Table()
    for col in ("", "name", "base model", "created", "val loss", "perplexity", "status"):
        table.add_column(col)
    for a in adapters:
        status = f"[red]corrupt: {a.problem}[/]" if a.problem else "ok"
        table.add_row("*" if a.name == default else "", a.name, str(a.meta.get("base_model", "?")), str(a.meta.get("created", "?"))[:16],
                      _metric(a.meta, "val_loss", ".4f"), _metric(a.meta, "val_perplexity", ".2f"), status)
    ctx.console.print(table)
    if default is None:
        ctx.say("default: the base model (no adapter promoted)")
    return 0


def _show(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry

    info = registry.get_adapter(ctx.paths, args.name)
    meta = info.meta
    if args.json:
        print(json.dumps({**meta, "path": str(info.path), "default": registry.default_adapter(ctx.paths) == info.name}, indent=2))
        return 0
    m, data = meta.get("metrics", {}), meta.get("data", {})
    lines = [f"[bold]{info.name}[/]  {info.path}",
             f"base model: {meta.get('base_model')} (fingerprint {meta.get('base_fingerprint')})",
             f"created: {meta.get('created')}  precision: {meta.get('precision')}"]
    for split in ("train", "val"):
        d = data.get(split)
        if d:
            lines.append(f"{split} data: {d['path']} ({d['rows']} rows, sha256 {d['sha256'][:12]})")
    lines.append(f"metrics: {json.dumps({k: v for k, v in m.items() if k != 'per_epoch'})}")
    for e in m.get("per_epoch", []):
        lines.append(f"  epoch {e['epoch']:g}: val loss {e['val_loss']:.4f}, perplexity {e['perplexity']:.2f}")
    c = meta.get("config", {})
    lines.append(f"config: LoRA r={c.get('lora_r')} alpha={c.get('lora_alpha')} dropout={c.get('lora_dropout')} "
                 f"lr={c.get('learning_rate')} epochs={c.get('epochs')} max_length={c.get('max_length')}")
    for line in lines:
        ctx.console.print(line, highlight=False)
    return 0


def _configured_base(ctx: Context) -> BaseModel:
    from chatkit.training.base import resolve_base

    return resolve_base(ctx.settings, ctx.paths, ctx.say)


def _promote(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry
    from chatkit.training.gate import check_verdict

    info = registry.get_adapter(ctx.paths, args.name)
    base = _configured_base(ctx)
    registry.check_base(info, base.model_id, base.fingerprint)
    current = registry.default_adapter(ctx.paths)
    if args.force:
        try:
            check_verdict(ctx.paths, args.name, current)
        except AdapterError as exc:
            ctx.say(f"[yellow]--force: promoting despite: {exc}[/]")
    else:
        verdict = check_verdict(ctx.paths, args.name, current)
        if verdict.get("verdict") == "no significant difference":
            ctx.say(f"[yellow]note: '{args.name}' is not significantly better than {current or 'the base model'}[/]")
    previous = registry.promote(ctx.paths, args.name)
    ctx.say(f"default adapter: {args.name} (was {previous or 'the base model'}); `chatkit adapters rollback` undoes this")
    return 0


def _rollback(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry

    current, restored = registry.rollback(ctx.paths)
    ctx.say(f"default adapter: {restored or 'the base model'} (was {current or 'the base model'})")
    return 0


def _rm(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry

    registry.remove(ctx.paths, args.name)
    ctx.say(f"removed adapter {args.name}")
    return 0


def _export(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.training import registry

    if getattr(args, "gguf", None):
        out = writable_output(args.gguf, "--gguf", suffix=".gguf")
        if out.exists():  # before the adapter is read or the base model loads: a merge takes minutes
            raise InputError(f"{out} already exists", "pass a new file name to --gguf")
        return _export_gguf(ctx, args, registry.get_adapter(ctx.paths, args.name), out)
    out = writable_output(args.out, "--out", folder=True)
    if args.merged and out.exists():
        raise InputError(f"{out} already exists", "pass a new folder to --out")
    info = registry.get_adapter(ctx.paths, args.name)
    if not args.merged:
        registry.copy_adapter(info, out)
        ctx.say(f"exported adapter {args.name} -> {out} (load with PeftModel.from_pretrained)")
        return 0
    from chatkit.training.merge import merge_adapter

    base = _configured_base(ctx)
    registry.check_base(info, base.model_id, base.fingerprint)
    diff = merge_adapter(base.path, info.path, out)
    ctx.say(f"merged {args.name} into {base.model_id} -> {out} (max logit difference {diff:.1e}, limit 1e-3)")
    return 0


def _export_gguf(ctx: Context, args: argparse.Namespace, info: AdapterInfo, out: Path) -> int:
    from chatkit.training import registry
    from chatkit.training.merge import export_gguf

    base = _configured_base(ctx)
    registry.check_base(info, base.model_id, base.fingerprint)
    result = export_gguf(base.path, info.path, out, args.quant, ctx.say)
    mib = result["bytes"] / 2**20
    check = (f"llama.cpp agrees with the merged model on {result['top1_agreement']:.1%} of {result['positions']} next tokens"
             if result["top1_agreement"] is not None else "not run through llama.cpp: llama-cpp-python is not installed")
    ctx.say(f"merged {args.name} into {base.model_id} -> {out} ({args.quant}, {mib:.0f} MiB; max logit difference "
            f"{result['max_abs_logit_diff']:.1e}; {check})")
    return 0

