"""Dialogue-model generation: dtype choice, loading, the decode loop (base.py) and its backends."""

from chatkit.generation.base import Generator, GenParams, StreamStats

__all__ = ["GenParams", "Generator", "StreamStats"]
