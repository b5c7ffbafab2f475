"""Where the project's own corpora live: beside the package in a source checkout, in the installed data
dir (`<prefix>/share/chatkit/corpora`, pyproject's `[tool.setuptools.data-files]`) after a wheel install."""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath

INSTALLED_DATA = ("share", "chatkit", "corpora")


def corpora_root() -> Path:
    """The folder holding `curriculum/` and `handbook/`; a checkout wins so its edits are what gets indexed."""
    checkout = Path(__file__).resolve().parents[1] / "corpora"
    if (checkout / "curriculum").is_dir():
        return checkout
    return installed_corpora_root() or checkout


@functools.cache
def installed_corpora_root() -> Path | None:
    """Found through the distribution's RECORD, so every install scheme (venv, --user, --prefix) is covered."""
    from importlib import metadata

    try:
        files = metadata.distribution("chatkit").files or []
    except metadata.PackageNotFoundError:
        return None
    size = len(INSTALLED_DATA)
    for file in files:
        parts = PurePosixPath(file).parts
        for i in range(len(parts) - size):
            if parts[i:i + size] == INSTALLED_DATA:
                located = Path(str(file.locate())).resolve()
                return located.parents[len(parts) - i - size - 1]
    return None
