"""Dialogue-model generation: dtype choice, loading, streaming, adapters."""

from chatkit.generation.params import GenParams

__all__ = ["GenParams"]
