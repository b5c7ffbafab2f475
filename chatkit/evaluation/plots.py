"""The comparison report's PNGs (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatkit.evaluation.compare import Comparison

GREEN, RED, GREY = "#2a9d4b", "#c8372d", "#8a8a8a"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "figure.dpi": 100})
    return plt


def metric_bars(c: Comparison, out: Path) -> Path:
    """Mean paired difference per metric with its 95 % bootstrap CI as whiskers."""
    plt = _pyplot()
    rows = [m for m in c.metrics if m.n > 0][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.8))
    colors = [GREEN if m.above else RED if m.below else GREY for m in rows]
    y = range(len(rows))
    ax.barh(list(y), [m.diff for m in rows], color=colors, height=0.6,
            xerr=[[m.diff - m.ci_low for m in rows], [m.ci_high - m.diff for m in rows]], capsize=4, ecolor="black")
    ax.set_yticks(list(y), [f"{m.metric} ({m.baseline_mean:.2f} -> {m.candidate_mean:.2f})" for m in rows])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{c.candidate} minus {c.baseline} (mean per item, 95% CI)")
    ax.set_title(f"{c.candidate} vs {c.baseline}: {c.verdict} ({c.items} items)")
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=GREEN, label="CI above 0"), Patch(color=RED, label="CI below 0"),
                       Patch(color=GREY, label="CI contains 0")], loc="lower right", fontsize=9)
    fig.tight_layout()
    return _save(plt, fig, out / "metrics.png")


def item_deltas(c: Comparison, out: Path) -> Path:
    """Token-F1 change of every answerable item, sorted: wins above the line, losses below."""
    plt = _pyplot()
    deltas = sorted((ch.delta for ch in c.changes), reverse=True)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar(range(len(deltas)), deltas, color=[GREEN if d > 0 else RED if d < 0 else GREY for d in deltas], width=1.0)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("QA item (sorted by change)")
    ax.set_ylabel(f"token F1: {c.candidate} minus {c.baseline}")
    ax.set_title(f"Per-item token F1: {c.wins} wins, {c.ties} ties, {c.losses} losses")
    ax.set_ylim(-1.05, 1.05)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, out / "items.png")


def latency(c: Comparison, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    series = [list(c.baseline_latency), list(c.candidate_latency)]
    ax.boxplot(series, orientation="horizontal", widths=0.5, showfliers=False)
    for row, values in enumerate(series, start=1):
        # Every item as a dot, so a handful of items still shows its spread.
        ax.scatter(values, [row + 0.08 * ((i % 5) - 2) for i in range(len(values))], s=12, alpha=0.5, color="#1f5fa8")
    ax.set_yticks([1, 2], [c.baseline, c.candidate])
    ax.set_xlabel("seconds per answer (retrieval + generation)")
    ax.set_title("Answer latency per item")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, out / "latency.png")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def all_plots(c: Comparison, out: Path) -> list[Path]:
    return [metric_bars(c, out), item_deltas(c, out), latency(c, out)]
