"""Paired comparison of two runs over the same QA items: per-metric differences with bootstrap CIs,
a paired significance test, wins/ties/losses and a verdict that follows from the numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chatkit.errors import DataError
from chatkit.evaluation.answers import ItemResult

# Higher is better for all of them. The verdict reads HEADLINE: what a user feels, wrongful refusals
# included; a run must not buy one of them with another.
HEADLINE = ("token_f1", "citation_precision", "keyword_recall", "groundedness", "answered_when_answerable",
            "refused_when_unanswerable")
METRICS = (*HEADLINE, "citation_recall", "rouge_l", "exact_match", "gold_doc_retrieved")
RESAMPLES = 10_000
SEED = 0
TIE = 1e-9

BETTER, WORSE, SAME = "better", "worse", "no significant difference"


@dataclass(frozen=True)
class MetricDiff:
    metric: str
    n: int
    baseline_mean: float
    candidate_mean: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def above(self) -> bool:
        return self.n > 0 and self.ci_low > 0

    @property
    def below(self) -> bool:
        return self.n > 0 and self.ci_high < 0


@dataclass(frozen=True)
class ItemChange:
    id: str
    question: str
    baseline_f1: float
    candidate_f1: float
    baseline_answer: str
    candidate_answer: str

    @property
    def delta(self) -> float:
        return self.candidate_f1 - self.baseline_f1


@dataclass(frozen=True)
class Comparison:
    candidate: str
    baseline: str
    items: int
    metrics: tuple[MetricDiff, ...]
    wins: int
    ties: int
    losses: int
    changes: tuple[ItemChange, ...]  # every answerable item's token-F1 change, largest |change| first
    verdict: str
    reasons: tuple[str, ...]
    baseline_latency: tuple[float, ...]
    candidate_latency: tuple[float, ...]

    def metric(self, name: str) -> MetricDiff:
        return next(m for m in self.metrics if m.metric == name)

    def verdict_json(self) -> dict[str, Any]:
        """What the promotion gate (chatkit.training.gate) reads."""
        out: dict[str, Any] = {"better": self.verdict == BETTER, "worse": self.verdict == WORSE, "verdict": self.verdict,
                               "adapter": self.candidate, "baseline": self.baseline, "items": self.items,
                               "wins": self.wins, "ties": self.ties, "losses": self.losses, "reasons": list(self.reasons),
                               "headline": list(HEADLINE)}
        for m in self.metrics:
            out[m.metric] = [round(m.ci_low, 6), round(m.ci_high, 6)]
        out["metrics"] = {m.metric: asdict(m) for m in self.metrics}
        return out


def per_item(result: ItemResult, metric: str) -> float | None:
    # Refusal is scored per class: one number for both would let more refused unanswerables hide more
    # wrongly refused answerables.
    if metric == "answered_when_answerable":
        return float(not result.abstained) if result.answerable else None
    if metric == "refused_when_unanswerable":
        return None if result.answerable else float(result.abstained)
    value = result.scores.get(metric)
    return None if value is None else float(value)


def bootstrap_ci(diffs: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference."""
    import numpy as np

    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunks keep memory flat on large QA files.
    step = max(1, 2_000_000 // d.size)
    for start in range(0, resamples, step):
        stop = min(start + step, resamples)
        means[start:stop] = d[rng.integers(0, d.size, size=(stop - start, d.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_p_value(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank test; 1.0 when nothing changed (the test is undefined there)."""
    import numpy as np
    from scipy.stats import wilcoxon

    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or np.all(np.abs(d) <= TIE):
        return 1.0
    return float(wilcoxon(d, zero_method="zsplit").pvalue)


def metric_diff(metric: str, pairs: Sequence[tuple[ItemResult, ItemResult]]) -> MetricDiff:
    kept = [(a, b) for a, b in ((per_item(x, metric), per_item(y, metric)) for x, y in pairs) if a is not None and b is not None]
    if not kept:
        return MetricDiff(metric, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    diffs = [b - a for a, b in kept]
    low, high = bootstrap_ci(diffs)
    return MetricDiff(metric, len(kept), sum(a for a, _ in kept) / len(kept), sum(b for _, b in kept) / len(kept),
                      sum(diffs) / len(diffs), low, high, paired_p_value(diffs))


def decide(metrics: Sequence[MetricDiff]) -> tuple[str, tuple[str, ...]]:
    """worse: any HEADLINE metric's CI entirely below 0; better: none below and at least one entirely
    above 0; otherwise no significant difference. A metric with no items (no unanswerable item, say)
    decides nothing."""
    headline = [m for m in metrics if m.metric in HEADLINE and m.n > 0]
    below = [m for m in headline if m.below]
    above = [m for m in headline if m.above]
    if below:
        return WORSE, tuple(f"{m.metric} {m.diff:+.3f}, 95% CI [{m.ci_low:+.3f}, {m.ci_high:+.3f}] entirely below 0" for m in below)
    if above:
        return BETTER, tuple(f"{m.metric} {m.diff:+.3f}, 95% CI [{m.ci_low:+.3f}, {m.ci_high:+.3f}] entirely above 0" for m in above)
    return SAME, tuple(f"{m.metric} {m.diff:+.3f}, 95% CI [{m.ci_low:+.3f}, {m.ci_high:+.3f}] contains 0" for m in headline)


def pair_up(baseline: Sequence[ItemResult], candidate: Sequence[ItemResult]) -> list[tuple[ItemResult, ItemResult]]:
    by_id = {r.id: r for r in candidate}
    pairs = [(r, by_id[r.id]) for r in baseline if r.id in by_id]
    if not pairs:
        raise DataError("the two runs share no QA item ids", "compare runs over the same QA file")
    return pairs


def compare(baseline: Sequence[ItemResult], candidate: Sequence[ItemResult], baseline_name: str = "base",
            candidate_name: str = "adapter") -> Comparison:
    pairs = pair_up(baseline, candidate)
    metrics = tuple(metric_diff(name, pairs) for name in METRICS)
    changes = [ItemChange(a.id, a.question, float(a.scores["token_f1"] or 0.0), float(b.scores["token_f1"] or 0.0), a.prediction, b.prediction)
               for a, b in pairs if a.scores.get("token_f1") is not None and b.scores.get("token_f1") is not None]
    wins = sum(c.delta > TIE for c in changes)
    losses = sum(c.delta < -TIE for c in changes)
    changes.sort(key=lambda c: (-abs(c.delta), c.id))
    verdict, reasons = decide(metrics)
    return Comparison(candidate_name, baseline_name, len(pairs), metrics, wins, len(changes) - wins - losses, losses,
                      tuple(changes), verdict, reasons, tuple(a.latency_s for a, _ in pairs), tuple(b.latency_s for _, b in pairs))
