"""Which adapters the palette offers: 'base' plus the registry's usable adapters (or, without a
registry, every folder under <data dir>/adapters/ holding an adapter_config.json)."""

from __future__ import annotations

from chatkit.config import Paths


def list_adapters(paths: Paths) -> list[str]:
    try:
        from chatkit.training import registry

        names = [a.name for a in registry.list_adapters(paths) if not a.problem]
    except ImportError:
        folder = paths.adapters
        names = sorted(p.name for p in folder.iterdir() if (p / "adapter_config.json").is_file()) if folder.is_dir() else []
    return ["base", *[n for n in names if n != "base"]]


def default_adapter(paths: Paths) -> str | None:
    try:
        from chatkit.training import registry
    except ImportError:
        return None
    try:
        return registry.default_adapter(paths)
    except Exception:  # a broken registry.json must not keep the palette from opening
        return None
