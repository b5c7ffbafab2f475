"""Crash-safe file writes: temp name in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def atomic_file(target: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp_path)` then publish it as `target`; readers see the old file or the whole new one."""
    tmp = target.parent / f".tmp-{os.getpid()}-{target.name}"
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_dir(target: Path, fill: Callable[[Path], object]) -> None:
    """`fill(tmp_dir)` then rename it to `target`, which must not exist yet (names carry a generation)."""
    tmp = target.parent / f".tmp-{os.getpid()}-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        for p in tmp.rglob("*"):
            if p.is_file():
                _fsync_file(p)
        fsync_dir(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(folder: Path) -> None:
    """Temp files left by a writer that was killed; only call while holding the collection lock."""
    for p in folder.glob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
