"""The `chatkit` command line. Only argparse is imported at start-up; each verb imports what it needs."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from chatkit.cli import (
    adapters,
    ask,
    chat,
    config,
    conversations,
    data,
    doctor,
    index,
    search,
    serve,
    stats,
    train,
)
from chatkit.cli import (
    eval as eval_verbs,
)
from chatkit.cli.context import Context
from chatkit.errors import ChatkitError

# In the order `chatkit --help` lists them: the stages a user goes through, then the tools.
VERBS = (index, search, ask, chat, conversations, data, train, adapters, eval_verbs, serve, stats, doctor, config)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help="data dir (default: $CHATKIT_HOME or ~/.local/share/chatkit)")
    g.add_argument("--config", metavar="FILE", action="append", default=argparse.SUPPRESS, help="YAML config file (repeatable)")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=argparse.SUPPRESS, help="override one config key, e.g. --set retrieval.k=8 (repeatable)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and library warnings")
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
    for verb in VERBS:
        verb.register(sub, common)
    return parser


def _version() -> str:
    from chatkit import __version__

    return __version__


def quiet_libraries(debug: bool) -> None:
    """Library warnings (deprecations inside transformers, torch, peft) are noise users cannot act on.

    Must run before the heavy libraries are imported: transformers reads its verbosity once, at import.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning" if debug else "error")
    if not sys.warnoptions:  # an explicit `python -W` or PYTHONWARNINGS wins
        warnings.simplefilter("default" if debug else "ignore")


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(2 if argv is None and len(sys.argv) > 1 else 0)
    ctx = Context(args)
    quiet_libraries(ctx.debug)
    try:
        code = args.func(ctx, args)
    except ChatkitError as exc:
        if ctx.debug:
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
