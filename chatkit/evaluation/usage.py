"""Usage statistics from the conversation store (`chatkit stats`): answers per day, latency, speed,
abstentions and feedback, overall and per adapter; a PNG of them with matplotlib."""

from __future__ import annotations

import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chatkit.conversations import StoredTurn
from chatkit.errors import InputError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: float | None = None) -> float:
    """'7d', '24h', '30m', '2w', an ISO date ('2025-01-31'), or 'all'/'' (everything) -> a Unix time."""
    if not text or text.strip().lower() == "all":
        return 0.0
    now = time.time() if now is None else now
    m = _SPAN.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise InputError(f"--since wants a span like 7d, 24h, 30m, 2w or a date like 2025-01-31, got {text!r}",
                         "e.g. chatkit stats --since 7d") from None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class UsageGroup:
    """The figures for one set of turns (all of them, or one adapter's)."""

    questions: int = 0  # every stored turn
    answers: int = 0  # complete turns
    incomplete: int = 0  # cancelled, crashed or still running
    per_day: dict[str, int] = field(default_factory=dict)  # local date -> complete answers
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    first_token_p50_s: float | None = None
    tokens_per_s: float | None = None  # median over generated answers
    generated_tokens: int = 0
    abstentions: int = 0
    abstention_rate: float | None = None
    good: int = 0
    bad: int = 0
    feedback_ratio: float | None = None  # good / (good + bad)
    sources: dict[str, int] = field(default_factory=dict)  # cli / tui / server -> questions


@dataclass
class UsageStats:
    since: float
    until: float
    overall: UsageGroup
    adapters: dict[str, UsageGroup]

    def to_dict(self) -> dict[str, Any]:
        def fmt(t: float) -> str | None:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) if t else None

        return {"since": fmt(self.since), "until": fmt(self.until), "overall": _rounded(asdict(self.overall)),
                "adapters": {k: _rounded(asdict(v)) for k, v in self.adapters.items()}}


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(t))


def group_stats(turns: Sequence[StoredTurn]) -> UsageGroup:
    g = UsageGroup(questions=len(turns))
    done = [t for t in turns if t.complete]
    g.answers, g.incomplete = len(done), len(turns) - len(done)
    g.per_day = dict(sorted(Counter(day_of(t.created) for t in done).items()))
    g.sources = dict(sorted(Counter(t.source or "cli" for t in turns).items()))
    latency = [float(t.timings["total_s"]) for t in done if t.timings.get("total_s") is not None]
    g.latency_p50_s, g.latency_p95_s = percentile(latency, 50), percentile(latency, 95)
    first = [float(t.timings.get("retrieval_s", 0.0)) + float(t.timings["prefill_s"]) for t in done if "prefill_s" in t.timings]
    g.first_token_p50_s = percentile(first, 50)
    speed = [float(t.timings["tokens_per_s"]) for t in done if float(t.timings.get("tokens_per_s", 0.0) or 0.0) > 0]
    g.tokens_per_s = percentile(speed, 50)
    g.generated_tokens = int(sum(float(t.timings.get("new_tokens", 0.0) or 0.0) for t in turns))
    g.abstentions = sum(1 for t in done if t.abstained)
    g.abstention_rate = g.abstentions / g.answers if g.answers else None
    g.good = sum(1 for t in turns if t.rating == 1)
    g.bad = sum(1 for t in turns if t.rating == -1)
    g.feedback_ratio = g.good / (g.good + g.bad) if g.good + g.bad else None
    return g


def usage_stats(turns: Sequence[StoredTurn], since: float = 0.0, until: float | None = None) -> UsageStats:
    """Figures for the turns asked at or after `since`, overall and per adapter ('base' for none)."""
    until = time.time() if until is None else until
    kept = [t for t in turns if since <= t.created <= until]
    by_adapter: dict[str, list[StoredTurn]] = defaultdict(list)
    for t in kept:
        by_adapter[t.adapter or "base"].append(t)
    return UsageStats(since, until, group_stats(kept), {name: group_stats(ts) for name, ts in sorted(by_adapter.items())})


def plot_usage(stats: UsageStats, out: Path) -> Path:
    """Four panels: answers per day per adapter, latency p50/p95, tokens/s, abstention and good-feedback rates."""
    from chatkit.evaluation.plots import _pyplot

    plt = _pyplot()
    names = list(stats.adapters)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    days = sorted({d for g in stats.adapters.values() for d in g.per_day})
    bottom = [0] * len(days)
    for name in names:
        counts = [stats.adapters[name].per_day.get(d, 0) for d in days]
        ax.bar(days, counts, bottom=bottom, label=name)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_title("answers per day")
    ax.tick_params(axis="x", labelrotation=45)
    if names:
        ax.legend(fontsize=9)
    x = list(range(len(names)))

    def bars(axis: Any, values: list[float | None], title: str, ylabel: str, offset: float = 0.0, width: float = 0.6,
             label: str | None = None) -> None:
        axis.bar([i + offset for i in x], [v or 0.0 for v in values], width=width, label=label)
        axis.set_xticks(x, names)
        axis.set_title(title)
        axis.set_ylabel(ylabel)
        axis.grid(axis="y", alpha=0.3)

    ax = axes[0][1]
    bars(ax, [stats.adapters[n].latency_p50_s for n in names], "answer latency", "seconds", -0.2, 0.4, "p50")
    bars(ax, [stats.adapters[n].latency_p95_s for n in names], "answer latency", "seconds", 0.2, 0.4, "p95")
    ax.legend(fontsize=9)
    bars(axes[1][0], [stats.adapters[n].tokens_per_s for n in names], "generation speed (median)", "tokens/s")
    ax = axes[1][1]
    bars(ax, [stats.adapters[n].abstention_rate for n in names], "rates", "share", -0.2, 0.4, "abstention")
    bars(ax, [stats.adapters[n].feedback_ratio for n in names], "rates", "share", 0.2, 0.4, "good / rated")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=9)
    since = time.strftime("%Y-%m-%d", time.localtime(stats.since)) if stats.since else "the start"
    fig.suptitle(f"chatkit usage since {since}: {stats.overall.answers} answers")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
