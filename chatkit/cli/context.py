"""What every verb needs, built lazily: settings, the data dir, a console."""

from __future__ import annotations

import argparse
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatkit.config import Paths, Settings



class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        home = getattr(args, "home", None)
        if home:
            self.home = Path(home).expanduser()
        else:
            from chatkit.config import default_home

            self.home = default_home()
        self.debug = bool(getattr(args, "debug", False))

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

        try:
            return Paths(self.home).ensure()
        except OSError as exc:
            raise ChatkitError(f"data dir {self.home} is not writable: {exc.strerror}", "pass --home DIR or set CHATKIT_HOME") from None

    @cached_property
    def console(self) -> Any:
        return _console(stderr=False)

    @cached_property
    def err_console(self) -> Any:
        return _console(stderr=True)

    def say(self, message: str) -> None:
        """Progress and notes go to stderr so stdout stays clean for --json."""
        self.err_console.print(message, highlight=False)


def _console(stderr: bool) -> Any:
    """A rich console that wraps only on a terminal: piped output (files, scripts, tests) keeps whole lines."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())
