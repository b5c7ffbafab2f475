"""Checks that fail in seconds, before the embedder and the dialogue model load (minutes)."""

from __future__ import annotations

from collections.abc import Sequence

from chatkit.config import Paths, Settings
from chatkit.errors import CollectionError, InputError


def check_adapters(paths: Paths, names: Sequence[str]) -> None:
    """An unknown or corrupt adapter, or none at all to compare with base, raises here."""
    from chatkit.training.registry import get_adapter

    if not names:
        raise InputError("nothing to compare: base is always included", "pass --adapter NAME (`chatkit adapters ls` lists them)")
    for name in names:
        get_adapter(paths, name)


def check_collections(settings: Settings, paths: Paths, names: Sequence[str]) -> None:
    """A missing or empty collection raises here; the default ones are built from corpora/ on first use."""
    from chatkit.assembly import DEFAULT_COLLECTIONS
    from chatkit.retrieval.service import collection, missing_hint

    for name in names:
        if name in DEFAULT_COLLECTIONS:
            continue
        col = collection(settings, paths, name)
        try:
            if not col.exists:
                raise CollectionError(f"collection '{name}' does not exist", missing_hint(name))
            if col.store.counts()["chunks"] == 0:
                raise CollectionError(f"collection '{name}' is empty", missing_hint(name))
        finally:
            col.close()
