"""`chatkit config show`: the effective config, or every key with its help."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common], help="show the effective config and every key")
    ss = p.add_subparsers(dest="sub", metavar="SUBVERB")
    show = ss.add_parser("show", parents=[common], help="print the effective config as YAML")
    show.add_argument("--keys", action="store_true", help="list every key with its help text instead")
    show.set_defaults(func=run_show)
    p.set_defaults(func=run_show, keys=False)


def run_show(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.config import all_keys, allowed, to_dict

    settings = ctx.settings
    if args.keys:
        for key, (value, help_text) in all_keys(settings).items():
            limits = allowed(key)
            print(f"{key} = {value!r}\n    {help_text}" + (f"\n    allowed: {limits}" if limits else ""))
        return 0
    import yaml

    print(f"# data dir: {ctx.home}")
    print(yaml.safe_dump(to_dict(settings), sort_keys=False).rstrip())
    return 0
