"""The adapter registry in `<data dir>/adapters/`.

Each adapter is a plain PEFT folder (`adapter_config.json` + `adapter_model.safetensors`, loadable by
`PeftModel.from_pretrained`) plus `chatkit-adapter.json`: base model id and fingerprint, data hashes,
config, metrics, date. `registry.json` holds the default adapter and the stack of earlier defaults
that `rollback` returns to, plus a log of every change. Every write is atomic: a crash leaves the old
state or the new one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.config import Paths
from chatkit.errors import AdapterError
from chatkit.retrieval.atomic import atomic_dir, atomic_file

REGISTRY = "registry.json"
META = "chatkit-adapter.json"
WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    meta: dict[str, Any]
    problem: str = ""  # why the folder is unusable; '' when it is fine


def check_name(name: str) -> str:
    if not _NAME.match(name) or name in ("base", REGISTRY) or name.endswith(".tmp"):
        raise AdapterError(f"invalid adapter name {name!r}",
                           "use letters, digits, '.', '_' or '-' (up to 64), not 'base'")
    return name


def adapter_path(paths: Paths, name: str) -> Path:
    return paths.adapters / check_name(name)


# --- registry.json ----------------------------------------------------------------------------


def read_registry(paths: Paths) -> dict[str, Any]:
    path = paths.adapters / REGISTRY
    if not path.is_file():
        return {"default": None, "previous": [], "log": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("previous", []), list):
            raise ValueError("not a registry object")
    except ValueError:
        raise AdapterError(f"{path} is corrupt", "restore it from a backup or delete it (adapters stay; the default is reset)") from None
    data.setdefault("default", None)
    data.setdefault("previous", [])
    data.setdefault("log", [])
    return data


def write_registry(paths: Paths, data: dict[str, Any]) -> None:
    paths.adapters.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2)
    atomic_file(paths.adapters / REGISTRY, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def default_adapter(paths: Paths) -> str | None:
    """The promoted adapter, or None for the base model."""
    name = read_registry(paths).get("default")
    return str(name) if name else None


def _log(data: dict[str, Any], action: str, **fields: Any) -> None:
    data["log"].append({"action": action, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields})


# --- adapter folders --------------------------------------------------------------------------


def inspect_adapter(path: Path) -> AdapterInfo:
    """Read an adapter folder without loading torch; say what is wrong instead of raising."""
    name = path.name
    if not path.is_dir():
        return AdapterInfo(name, path, {}, "the folder is missing")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError
    except (OSError, ValueError):
        return AdapterInfo(name, path, {}, f"{META} is missing or unreadable")
    try:
        peft = json.loads((path / PEFT_CONFIG).read_text(encoding="utf-8"))
        if not isinstance(peft, dict) or "peft_type" not in peft:
            raise ValueError
    except (OSError, ValueError):
        return AdapterInfo(name, path, meta, f"{PEFT_CONFIG} is missing or unreadable")
    problem = _check_safetensors(path / WEIGHTS)
    return AdapterInfo(name, path, meta, problem)


def _check_safetensors(path: Path) -> str:
    """The header names every tensor's byte range; a truncated or garbled file fails this check."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or n > size - 8:
                return f"{WEIGHTS} is truncated or not safetensors"
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError):
        return f"{WEIGHTS} is missing or not safetensors"
    if 8 + n + end != size:
        return f"{WEIGHTS} is truncated ({size} bytes, header says {8 + n + end})"
    return ""


def list_adapters(paths: Paths) -> list[AdapterInfo]:
    if not paths.adapters.is_dir():
        return []
    return [inspect_adapter(p) for p in sorted(paths.adapters.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def get_adapter(paths: Paths, name: str) -> AdapterInfo:
    """A usable adapter, or an AdapterError saying why not."""
    path = adapter_path(paths, name)
    if not path.exists():
        raise AdapterError(f"unknown adapter '{name}'", "`chatkit adapters ls` lists them")
    info = inspect_adapter(path)
    if info.problem:
        raise AdapterError(f"adapter '{name}' is corrupt: {info.problem}", f"`chatkit adapters rm {name}` and train it again")
    return info


def check_base(info: AdapterInfo, model_id: str, fingerprint: str) -> None:
    want = info.meta.get("base_fingerprint")
    if want != fingerprint:
        raise AdapterError(
            f"adapter '{info.name}' was trained on {info.meta.get('base_model', '?')} ({want}), "
            f"but the dialogue model is {model_id} ({fingerprint})",
            "set models.dialogue to the adapter's base model, or train a new adapter on this one",
        )


def publish(paths: Paths, name: str, fill: Callable[[Path], None]) -> Path:
    """Write a new adapter folder atomically; an existing name is never overwritten."""
    target = adapter_path(paths, name)
    if target.exists():
        raise AdapterError(f"adapter '{name}' already exists", f"choose another --name, or `chatkit adapters rm {name}` first")
    paths.adapters.mkdir(parents=True, exist_ok=True)
    atomic_dir(target, fill)
    return target


def copy_adapter(info: AdapterInfo, out: Path) -> None:
    """Copy the adapter's files into a new folder `out`, atomically."""
    from chatkit.errors import InputError

    if out.exists():
        raise InputError(f"{out} already exists", "pass a new folder to --out")
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(tmp: Path) -> None:
        for p in info.path.iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)

    atomic_dir(out, fill)


# --- changes ----------------------------------------------------------------------------------


def promote(paths: Paths, name: str) -> str | None:
    """Make `name` the default; returns the previous default."""
    data = read_registry(paths)
    previous = data["default"]
    if previous == name:
        return previous
    data["previous"].append(previous)
    data["default"] = name
    _log(data, "promote", name=name, previous=previous)
    write_registry(paths, data)
    return previous


def rollback(paths: Paths) -> tuple[str | None, str | None]:
    """Restore the default before the last promotion; returns (from, to)."""
    data = read_registry(paths)
    if not data["previous"]:
        raise AdapterError("nothing to roll back to: no adapter was promoted", "`chatkit adapters promote NAME` first")
    current, restored = data["default"], data["previous"].pop()
    data["default"] = restored
    _log(data, "rollback", name=restored, previous=current)
    write_registry(paths, data)
    return current, restored


def remove(paths: Paths, name: str) -> None:
    path = adapter_path(paths, name)
    if not path.exists():
        raise AdapterError(f"unknown adapter '{name}'", "`chatkit adapters ls` lists them")
    data = read_registry(paths)
    if data["default"] == name:
        raise AdapterError(f"adapter '{name}' is the default", "`chatkit adapters rollback` or promote another one first")
    data["previous"] = [p for p in data["previous"] if p != name]
    _log(data, "rm", name=name)
    write_registry(paths, data)
    # Rename first so a half-deleted folder never looks like an adapter.
    trash = paths.adapters / f".trash-{name}-{time.time_ns()}"
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
