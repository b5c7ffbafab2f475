"""The `chatkit` command line. Only argparse is imported at start-up; each verb imports what it needs."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

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
from chatkit.terminal_text import printable

# In the order `chatkit --help` lists them: the stages a user goes through, then the tools.
VERBS = (index, search, ask, chat, conversations, data, train, adapters, eval_verbs, serve, stats, doctor, config)


class CommandLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line like every other error (argparse would print the whole usage block first);
    the verbs' parsers are made by `add_subparsers`, so they are of this class too."""

    def error(self, message: str) -> NoReturn:
        fail(f"error: {message} (hint: `{self.prog} --help` shows the usage)", 2)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help="data dir (default: $CHATKIT_HOME or ~/.local/share/chatkit)")
    g.add_argument("--config", metavar="FILE", action="append", default=argparse.SUPPRESS, help="YAML config file (repeatable)")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=argparse.SUPPRESS, help="override one config key, e.g. --set retrieval.k=8 (repeatable)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and library warnings")
    parser = CommandLineParser(
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


# Free-text arguments: undecodable bytes in them (a lone surrogate, Python's surrogateescape) would fail deep
# inside tokenizers, SQLite or the terminal. Paths may hold such bytes legitimately and are not checked.
TEXT_ARGUMENTS = ("question", "query", "search", "comment", "name", "collection", "adapter")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(2 if argv is None and len(sys.argv) > 1 else 0)
    debug = bool(getattr(args, "debug", False))
    quiet_libraries(debug)
    try:
        check_text_arguments(args)
        code = args.func(Context(args), args)
    except ChatkitError as exc:
        if debug:
            raise
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        fail(f"error: {exc.message}{hint}", exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except Exception as exc:  # a bug: one line, not a traceback; --debug shows it
        if debug:
            raise
        fail(f"error: {unexpected(exc)} (run with --debug for the traceback)", 1)
    sys.exit(int(code or 0))


def check_text_arguments(args: argparse.Namespace) -> None:
    from chatkit.errors import InputError

    for name in TEXT_ARGUMENTS:
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and not _is_utf8(value):
                shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                raise InputError(f"{name} '{shown}' is not valid UTF-8 text", "check the terminal's encoding (e.g. LANG=C.UTF-8)")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unexpected(exc: BaseException) -> str:
    """An exception the code did not expect, as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    what = type(exc).__name__
    return f"{what}: {lines[0]}" if lines else what


def fail(line: str, code: int) -> NoReturn:
    """One line on stderr, then exit: a message quoting user text prints no escape sequence and never fails to encode."""
    with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: the exit code still says it
        print(printable(line, one_line=True), file=sys.stderr)
    sys.exit(code)


def _silence_stdout() -> None:
    """After EPIPE, Python's own flush at exit would print a second error: point stdout at /dev/null."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
