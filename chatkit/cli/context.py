"""What every verb needs, built lazily: settings, the data dir, consoles, a progress reporter."""

from __future__ import annotations

import argparse
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from rich.console import Console

    from chatkit.config import Paths, Settings
    from chatkit.indexing.report import Reporter

    # What `add_subparsers()` returns: each verb module adds its parser to it.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args: argparse.Namespace = args
        home = getattr(args, "home", None)
        if home:
            self.home: Path = Path(home).expanduser()
        else:
            from chatkit.config import default_home

            self.home = default_home()
        self.debug: bool = bool(getattr(args, "debug", False))

    @cached_property
    def settings(self) -> Settings:
        from chatkit.config import apply_offline, load_settings

        settings = load_settings(
            [Path(p) for p in getattr(self.args, "config", None) or []],
            getattr(self.args, "overrides", None) or [],
            home=self.home,
        )
        apply_offline(settings)
        return settings

    @cached_property
    def paths(self) -> Paths:
        from chatkit.config import Paths
        from chatkit.errors import ChatkitError

        # Settings are checked before anything is created under the data dir: a bad value leaves nothing behind.
        _ = self.settings
        try:
            return Paths(self.home).ensure()
        except OSError as exc:
            raise ChatkitError(f"data dir {self.home} is not writable: {exc.strerror}", "pass --home DIR or set CHATKIT_HOME") from None

    @cached_property
    def console(self) -> Console:
        return _console(stderr=False)

    @cached_property
    def err_console(self) -> Console:
        return _console(stderr=True)

    def say(self, message: str) -> None:
        """Progress and notes go to stderr so stdout stays clean for --json."""
        self.err_console.print(message, highlight=False)

    def reporter(self, quiet: bool) -> Reporter:
        """Progress bars on stderr; with --json only the warnings, as plain lines."""
        from chatkit.cli.progress import RichReporter
        from chatkit.indexing.report import QuietReporter

        if quiet:
            return QuietReporter(self.say)
        return RichReporter(self.err_console)


def show_help(parser: argparse.ArgumentParser) -> int:
    """What a verb with sub-verbs does when none is given."""
    parser.print_help()
    return 2


def _console(stderr: bool) -> Console:
    """A rich console that wraps only on a terminal: piped output (files, scripts, tests) keeps whole lines."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())
