"""Assemble a ChatEngine: the searcher, default collections built on first use, the dialogue model loaded on first use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chatkit.config import Paths, Settings
from chatkit.corpora import corpora_root
from chatkit.engine import ChatEngine
from chatkit.errors import CollectionError
from chatkit.generation.base import Generator

DEFAULT_COLLECTIONS = ("curriculum", "handbook")


def ensure_default_collections(settings: Settings, paths: Paths, names: Sequence[str],
                               progress: Callable[[str], None] | None = None, embedder: object = None) -> None:
    """Index corpora/curriculum and corpora/handbook into their collections on first use (and on change)."""
    from chatkit.indexing import ensure_collection

    root = corpora_root()
    for name in names:
        if name in DEFAULT_COLLECTIONS and (root / name).is_dir():
            ensure_collection(settings, paths, name, root / name, progress=progress, embedder=embedder)


def build_engine(settings: Settings, paths: Paths, collections: Sequence[str] | None = None,
                 progress: Callable[[str], None] | None = None) -> ChatEngine:
    """Searcher now; the dialogue model when an answer first needs it (search and extractive answers never do)."""
    from chatkit.models import resolve_embedder
    from chatkit.retrieval.embedder import Embedder
    from chatkit.retrieval.service import open_searcher
    from chatkit.training.registry import default_adapter

    names = list(collections or settings.engine.collections)
    if not names:
        raise CollectionError("no collection to search", "pass --collection NAME or set engine.collections")
    resolved = resolve_embedder(settings)
    embedder = Embedder(resolved.path, resolved.model_id, settings.retrieval.batch_size)
    ensure_default_collections(settings, paths, names, progress, embedder)
    searcher = open_searcher(settings, paths, names, embedder=embedder)
    engine = ChatEngine(settings, searcher, adapters_dir=paths.adapters,
                        resolve_adapter=lambda name: registered_adapter(paths, name, engine.generator),
                        load_generator=lambda: load_dialogue(settings, paths, progress),
                        default_adapter=lambda: settings.engine.adapter or default_adapter(paths))
    return engine


def load_dialogue(settings: Settings, paths: Paths, progress: Callable[[str], None] | None = None) -> Generator:
    """The dialogue model, with the shipped adapters installed for it."""
    from chatkit.generation.loader import load_generator
    from chatkit.models import model_fingerprint
    from chatkit.training.shipped import install_shipped

    generator = load_generator(settings, paths, progress)
    install_shipped(paths, model_fingerprint(generator.model_path))
    return generator


def registered_adapter(paths: Paths, name: str, generator: Generator) -> Path:
    """The registry's folder for `name`, refusing corrupt adapters and those trained on another base."""
    from chatkit.models import model_fingerprint
    from chatkit.training.registry import check_base, get_adapter

    info = get_adapter(paths, name)
    check_base(info, generator.model_id, model_fingerprint(generator.model_path))
    return info.path
