"""Build the dialogue generator the settings ask for."""

from __future__ import annotations

from collections.abc import Callable

from chatkit.config import Paths, Settings
from chatkit.generation.device import pick_dtype
from chatkit.generation.hf import HFGenerator
from chatkit.models import resolve_dialogue


def load_generator(settings: Settings, paths: Paths, progress: Callable[[str], None] | None = None) -> HFGenerator:
    resolved = resolve_dialogue(settings, paths, progress)
    dtype = pick_dtype(settings.models.dtype, paths.cache)
    gen = HFGenerator(resolved.path, dtype=dtype, threads=settings.models.threads)
    gen.model_id = resolved.model_id
    return gen
