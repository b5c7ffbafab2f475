"""Write a comparison as report.md, report.html (PNGs embedded), the PNGs and verdict.json into
`<reports>/compare-<ADAPTER>/` (what the promotion gate reads) and a timestamped copy beside it."""

from __future__ import annotations

import base64
import html
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatkit.evaluation.compare import HEADLINE, Comparison, MetricDiff
from chatkit.retrieval.atomic import atomic_dir

CHANGED_SHOWN = 10


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _cell(text: str) -> str:
    return _short(text).replace("|", "\\|")


def _refused(m: MetricDiff, mean: float, refusing: bool) -> str:
    count = round((mean if refusing else 1 - mean) * m.n)
    return f"{count}/{m.n}"


def _refusals(c: Comparison) -> list[str]:
    """Wrongful and rightful refusals as counts, the way a user meets them."""
    answered, refused = c.metric("answered_when_answerable"), c.metric("refused_when_unanswerable")
    parts = []
    if answered.n:
        parts.append(f"answerable items refused: {c.baseline} {_refused(answered, answered.baseline_mean, False)}, "
                     f"{c.candidate} {_refused(answered, answered.candidate_mean, False)}")
    if refused.n:
        parts.append(f"unanswerable items refused: {c.baseline} {_refused(refused, refused.baseline_mean, True)}, "
                     f"{c.candidate} {_refused(refused, refused.candidate_mean, True)}")
    return ["", "Refusals: " + "; ".join(parts) + "."] if parts else []


def comparison_markdown(c: Comparison) -> list[str]:
    lines = [f"## {c.candidate} vs {c.baseline}: **{c.verdict}**", ""]
    lines += [f"- {r}" for r in c.reasons]
    lines += ["", f"{c.items} paired items; token F1 per item: {c.wins} wins, {c.ties} ties, {c.losses} losses.", "",
              f"| metric | n | {c.baseline} | {c.candidate} | difference | 95% CI | Wilcoxon p |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for m in c.metrics:
        if m.n:
            lines.append(f"| {m.metric} | {m.n} | {m.baseline_mean:.3f} | {m.candidate_mean:.3f} | {m.diff:+.3f} | "
                         f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}] | {m.p_value:.3g} |")
    lines += _refusals(c)
    lat_b, lat_c = sorted(c.baseline_latency), sorted(c.candidate_latency)
    if lat_b and lat_c:
        lines += ["", f"Median latency: {c.baseline} {lat_b[len(lat_b) // 2]:.2f} s, {c.candidate} {lat_c[len(lat_c) // 2]:.2f} s."]
    moved = [ch for ch in c.changes if ch.delta != 0][:CHANGED_SHOWN]
    if moved:
        lines += ["", "### Items that changed most (token F1)", "",
                  f"| item | question | {c.baseline} | {c.candidate} | change | {c.candidate} answer |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {ch.id} | {_cell(ch.question)} | {ch.baseline_f1:.2f} | {ch.candidate_f1:.2f} | {ch.delta:+.2f} | "
                  f"{_cell(ch.candidate_answer)} |" for ch in moved]
    return lines + [""]


def markdown(gate: Comparison, others: Sequence[Comparison], meta: dict[str, Any], pngs: Sequence[str]) -> str:
    lines = [f"# Evaluation: {gate.candidate} vs {gate.baseline}", "",
             f"Verdict for the promotion gate: **{gate.verdict}** (against the current default, {gate.baseline}).", "",
             f"How it decides: worse = any headline metric ({', '.join(HEADLINE)}) has a 95% bootstrap CI (10,000 paired "
             "resamples) entirely below 0; better = none below and at least one entirely above 0 (see docs/evaluation.md).", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    for c in (gate, *others):
        lines += comparison_markdown(c)
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def markdown_to_html(md: str, folder: Path) -> str:
    """A small renderer for the subset `markdown()` writes; images become data: URIs so the page stands alone."""
    import re

    def inline(text: str) -> str:
        text = html.escape(text)
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)

    out, table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [x.strip().replace("\\|", "|") for x in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if set("".join(cells)) <= set("-:"):
                continue
            tag = "th" if not table else "td"
            out.append(("<table>" if not table else "") + "<tr>" + "".join(f"<{tag}>{inline(x)}</{tag}>" for x in cells) + "</tr>")
            table = True
            continue
        if table:
            out.append("</table>")
            table = False
        if m := re.match(r"!\[(.*)\]\((.+)\)", line):
            data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
            out.append(f'<p><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    if table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}"
             "img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>chatkit evaluation</title><style>{style}</style></head>" \
           f"<body>{''.join(out)}</body></html>"


def write_comparison(reports: Path, gate: Comparison, others: Sequence[Comparison] = (), meta: dict[str, Any] | None = None,
                     results: dict[str, Any] | None = None) -> Path:
    """Returns the `compare-<candidate>` folder; a crash mid-write leaves the previous report whole."""
    from chatkit.evaluation.plots import all_plots

    meta = dict(meta or {})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta.setdefault("date", time.strftime("%Y-%m-%d %H:%M:%S"))

    def fill(tmp: Path) -> None:
        pngs = [p.name for p in all_plots(gate, tmp)]
        md = markdown(gate, others, meta, pngs)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(markdown_to_html(md, tmp), encoding="utf-8")
        verdict = gate.verdict_json() | {"meta": meta, "vs": {c.baseline: c.verdict_json() for c in others}}
        (tmp / "verdict.json").write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        if results is not None:
            (tmp / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    reports.mkdir(parents=True, exist_ok=True)
    stamped = reports / f"compare-{gate.candidate}-{stamp}"
    atomic_dir(stamped, fill)
    latest = reports / f"compare-{gate.candidate}"
    atomic_dir(latest, lambda tmp: [shutil.copy2(p, tmp / p.name) for p in stamped.iterdir()])
    return latest
