"""Ingestion: files -> parsed documents -> chunks -> embeddings -> a collection. Joins corpus and retrieval."""

from __future__ import annotations

from chatkit.indexing.ensure import ensure_collection

__all__ = ["ensure_collection"]
