"""Calibrate `engine.abstain_threshold` on a QA file: retrieval only, no generation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.evaluation.answers import QAItem, load_qa


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    accuracy: float
    unanswerable_recall: float
    answerable_abstained: float


@dataclass(frozen=True)
class Calibration:
    rows: tuple[ThresholdRow, ...]
    recommended: ThresholdRow


def calibrate(settings: Settings, paths: Paths, qa: Path, collections: Sequence[str] | None,
              say: Callable[[str], None]) -> Calibration:
    """Sweep the threshold over the QA file's best passage similarities and recommend one."""
    from chatkit.assembly import ensure_default_collections
    from chatkit.retrieval.service import load_embedder, open_searcher

    items = load_qa(qa)
    names = list(collections or settings.engine.collections)
    embedder = load_embedder(settings)
    ensure_default_collections(settings, paths, names, say, embedder)
    searcher = open_searcher(settings, paths, names, embedder=embedder)
    rows = sweep(best_similarities(searcher, items, settings.engine.passages), [it.answerable for it in items])
    return Calibration(tuple(rows), choose(rows))


def best_similarities(searcher: Any, items: Sequence[QAItem], k: int) -> list[float]:
    return [max((h.dense_score or 0.0 for h in searcher.search(it.question, k=k)), default=0.0) for it in items]


def sweep(best: Sequence[float], answerable: Sequence[bool], lo: float = 0.1, hi: float = 0.6, step: float = 0.025) -> list[ThresholdRow]:
    rows = []
    n_unans = sum(not a for a in answerable) or 1
    n_ans = sum(answerable) or 1
    t = lo
    while t <= hi + 1e-9:
        abstain = [b < t for b in best]
        acc = sum(ab == (not a) for ab, a in zip(abstain, answerable, strict=True)) / len(best)
        rec = sum(ab for ab, a in zip(abstain, answerable, strict=True) if not a) / n_unans
        wrong = sum(ab for ab, a in zip(abstain, answerable, strict=True) if a) / n_ans
        rows.append(ThresholdRow(round(t, 3), acc, rec, wrong))
        t += step
    return rows


def choose(rows: Sequence[ThresholdRow], max_answerable_abstained: float = 0.05) -> ThresholdRow:
    """The most accurate threshold that refuses at most 5 % of answerable questions (ties: higher recall)."""
    allowed = [r for r in rows if r.answerable_abstained <= max_answerable_abstained] or list(rows)
    return max(allowed, key=lambda r: (round(r.accuracy, 6), r.unanswerable_recall))
