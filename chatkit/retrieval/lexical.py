"""The home of bm25s: BM25 over chunk texts with English stopwords and the Snowball stemmer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

K1, B = 1.5, 0.75


_STEMMER: list[Any] = []


def _stemmer() -> Any:
    if not _STEMMER:
        try:
            import Stemmer

            _STEMMER.append(Stemmer.Stemmer("english"))
        except ImportError:  # PyStemmer is a dependency; without it BM25 still works, a little worse
            _STEMMER.append(None)
    return _STEMMER[0]


def analyze(text: str) -> list[str]:
    """The terms BM25 sees in `text`: lowercased words, no English stopwords, stemmed."""
    import bm25s

    out = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return list(out[0]) if out else []


def long_stopword_list() -> list[str]:
    """bm25s's longer English stopword list (BM25 itself keeps the short one)."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return list(STOPWORDS_EN_PLUS)


class LexicalIndex:
    def __init__(self, retriever: Any, ids: Any) -> None:
        self.retriever = retriever
        self.ids = ids  # chunk id of each BM25 document position
        self._pos: dict[int, int] | None = None

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str]) -> LexicalIndex:
        import bm25s
        import numpy as np

        retriever = bm25s.BM25(k1=K1, b=B)
        if texts:
            tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
            retriever.index(tokens, show_progress=False)
        return cls(retriever, np.asarray(ids, dtype="int64"))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s
        import numpy as np

        ids = np.load(folder / "chunk_ids.npy")
        if not len(ids):
            return cls(bm25s.BM25(k1=K1, b=B), ids)
        return cls(bm25s.BM25.load(str(folder), show_progress=False), ids)

    def save(self, folder: Path) -> None:
        import numpy as np

        np.save(folder / "chunk_ids.npy", self.ids)
        if len(self.ids):
            self.retriever.save(str(folder), show_progress=False)
        (folder / "chatkit.json").write_text(json.dumps({"k1": K1, "b": B, "stemmer": _stemmer() is not None}))

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> Any:
        """BM25 score of every chunk, in position order (see `ids`)."""
        import numpy as np

        terms = analyze(query)
        if not terms or not len(self.ids):
            return np.zeros(len(self.ids), dtype="float32")
        return np.asarray(self.retriever.get_scores(terms), dtype="float32")

    def document_frequencies(self) -> dict[str, int]:
        """How many chunks contain each BM25 term."""
        import numpy as np

        if not len(self.ids):
            return {}
        counts = np.diff(self.retriever.scores["indptr"])
        return {term: int(counts[i]) for term, i in self.retriever.vocab_dict.items() if term and i < len(counts)}

    def position(self, chunk_id: int) -> int | None:
        if self._pos is None:
            self._pos = {int(c): i for i, c in enumerate(self.ids)}
        return self._pos.get(int(chunk_id))
