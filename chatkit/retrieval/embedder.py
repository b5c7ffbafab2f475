"""The home of sentence-transformers: one embedder, loaded once, normalized vectors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from chatkit.errors import ModelError


class Embedder:
    def __init__(self, path: str, name: str, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(path, device="cpu")
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load embedder from {path}: {str(exc).splitlines()[0]}",
                             "check models.embedder points at a sentence-transformers folder") from None
        self.name = name
        self.batch_size = batch_size
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getter() or 0)
        self.tokenizer = self.model.tokenizer
        self.max_tokens = int(self.model.max_seq_length or 256)
        # The server embeds on one thread and retrieves on another; a fast tokenizer used by two threads
        # at once fails ("Already borrowed"), so every use of the model or tokenizer holds this.
        self.lock = threading.RLock()

    def count_tokens(self, text: str) -> int:
        with self.lock:
            return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self.lock:
            enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in enc]

    @property
    def key(self) -> str:
        """What an index or an embedding cache entry is tied to: model id and dimension."""
        return f"{self.name}:{self.dim}"

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        with self.lock:
            enc = self.tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]

    def encode(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None, group: int | None = None) -> Any:
        """Unit-length float32 vectors, shape (len(texts), dim).

        Texts go to the model `group` at a time (default 4 batches); sentence-transformers sorts each
        group by length, so bigger groups waste less padding, smaller ones report progress more often.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        out = []
        step = group or self.batch_size * 4
        for start in range(0, len(texts), step):
            part = list(texts[start : start + step])
            with self.lock:
                vecs = self.model.encode(part, batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
            out.append(vecs.astype("float32", copy=False))
            if on_batch:
                on_batch(len(part))
        return np.concatenate(out)
