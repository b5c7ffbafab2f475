"""The `chatkit` command line. Only argparse is imported at start-up; each verb imports what it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chatkit.cli import commands
from chatkit.cli.context import Context
from chatkit.errors import ChatkitError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help="data dir (default: $CHATKIT_HOME or ~/.local/share/chatkit)")
    g.add_argument("--config", metavar="FILE", action="append", default=argparse.SUPPRESS, help="YAML config file (repeatable)")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=argparse.SUPPRESS, help="override one config key, e.g. --set retrieval.k=8 (repeatable)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = argparse.ArgumentParser(
        prog="chatkit",
        parents=[common],
        description="An offline domain assistant: index documents, ask and chat with citations, fine-tune, evaluate.",
        epilog="Stages: index/search -> ask/chat -> conversations -> data/train -> adapters -> eval -> serve/stats. "
        "Run `chatkit VERB --help` for details.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chatkit {_version()}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    commands.register(sub, common)
    return parser


def _version() -> str:
    from chatkit import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(2 if argv is None and len(sys.argv) > 1 else 0)
    ctx = Context(args)
    try:
        code = args.func(ctx, args)
    except ChatkitError as exc:
        if getattr(args, "debug", False):
            raise
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        print(f"error: {exc.message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(int(code or 0))
