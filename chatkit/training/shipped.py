"""Adapters that ship inside the package (`chatkit/adapters/NAME/`), installed into the registry once.

A shipped folder is a registry adapter (PEFT files + chatkit-adapter.json + training-log.json) whose
metadata also carries `shipped`: the comparison against the base model that was run before it was
committed. Installing copies it into `<data dir>/adapters/` and, only when that comparison found it
better than the base model and the user has not chosen a default yet, promotes it, so
`chatkit adapters rollback` returns to the base model. Each shipped adapter is installed at most once
per data dir: one the user removed stays removed.
"""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path
from typing import Any

from chatkit.config import Paths
from chatkit.retrieval.atomic import atomic_dir
from chatkit.training import registry

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "adapters"
INSTALL = "install-shipped"


def shipped_adapters(folder: Path = SHIPPED_DIR) -> list[registry.AdapterInfo]:
    if not folder.is_dir():
        return []
    infos = [registry.inspect_adapter(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))]
    return [i for i in infos if not i.problem]


def beats_base(info: registry.AdapterInfo) -> bool:
    shipped: dict[str, Any] = info.meta.get("shipped") or {}
    return bool(shipped.get("better")) and not shipped.get("worse", False)


def install_shipped(paths: Paths, base_fingerprint: str, folder: Path = SHIPPED_DIR) -> list[str]:
    """Copy new shipped adapters into the registry; returns the names installed now.

    Only an adapter trained on the dialogue model in use (same fingerprint) can become the default.
    """
    installed = []
    for info in shipped_adapters(folder):
        data = registry.read_registry(paths)
        if any(e.get("action") == INSTALL and e.get("name") == info.name for e in data["log"]):
            continue
        target = paths.adapters / info.name
        if not target.exists():
            paths.adapters.mkdir(parents=True, exist_ok=True)
            atomic_dir(target, functools.partial(_copy, info.path))
        data = registry.read_registry(paths)
        promoted = (beats_base(info) and info.meta.get("base_fingerprint") == base_fingerprint
                    and not data["default"] and not data["previous"])
        if promoted:
            data["previous"].append(None)
            data["default"] = info.name
        data["log"].append({"action": INSTALL, "name": info.name, "promoted": promoted, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        registry.write_registry(paths, data)
        installed.append(info.name)
    return installed


def _copy(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)
