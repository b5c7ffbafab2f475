"""Output paths (--out, --gguf, --png) checked before any work starts: a run of minutes must not end in
'permission denied'. Each problem is one error naming the path."""

from __future__ import annotations

import os
from pathlib import Path

from chatkit.errors import InputError


def writable_output(raw: str | Path, option: str, suffix: str | None = None, folder: bool = False) -> Path:
    """The path that will really be written for `option` (with `suffix` added when missing).

    A file output must not be a folder; a folder output (`folder=True`) may exist already only as a folder.
    Missing parent folders are created (as `mkdir -p` would) when the nearest existing one is a folder that
    takes new files; a parent that is a file, or one that cannot be written, is refused.
    """
    path = Path(raw).expanduser()
    if suffix and path.suffix.lower() != suffix and not path.is_dir():
        path = path.with_name(path.name + suffix)
    if not path.name or path.name in (".", ".."):
        raise InputError(f"{option} {raw} is not a file name", f"give {option} a path like out/result{suffix or ''}")
    if path.is_dir() and not folder:
        raise InputError(f"{option} {path} is a directory", f"give {option} a file path inside it, e.g. {path / ('out' + (suffix or ''))}")
    if path.exists() and folder and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder", f"give {option} a new folder name")
    parent = path.parent
    existing = _existing_ancestor(parent)
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} is a file, not a folder", f"choose another {option} path")
    _probe(existing, path, option)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot create folder {parent} ({exc.strerror or exc})",
                         f"choose a writable {option} path") from None
    return path


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(parent: Path, path: Path, option: str) -> None:
    """Create and remove a file beside the target: the only test that is right for read-only mounts, /proc,
    ACLs and root alike (os.access is not)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".chatkit-probe-", dir=parent)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {parent} ({exc.strerror or exc})",
                         f"choose a writable {option} path") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path} is not writable", f"choose a writable {option} path")
