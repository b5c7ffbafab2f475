"""`eval all`: SciFact retrieval, answers on corpora/qa and, when an adapter is promoted, its comparison
with base, in one report folder (`<reports>/eval-all-<time>/report.json` and `report.md`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.evaluation.answering import AnswerProgress, answer_models, generation_cache
from chatkit.evaluation.answers import load_qa, summarize

ANSWER_KEYS = ("token_f1", "rouge_l", "bleu", "keyword_recall", "citation_precision", "citation_recall", "groundedness",
               "gold_doc_retrieved", "abstention_precision", "abstention_recall", "latency_p50_s", "latency_p95_s")


@dataclass(frozen=True)
class SuiteRun:
    report: dict[str, Any]
    folder: Path


def default_qa() -> Path:
    from chatkit.corpora import corpora_root

    return corpora_root() / "qa" / "test.jsonl"


def default_beir() -> Path:
    from chatkit.corpora import corpora_root

    return corpora_root().parent.parent / "shared" / "data" / "scifact"


def run_suite(settings: Settings, paths: Paths, qa: Path, beir: Path, collections: Sequence[str] | None, limit: int | None,
              say: Callable[[str], None], progress: AnswerProgress) -> SuiteRun:
    from chatkit.evaluation.adapter_comparison import compare_adapters
    from chatkit.evaluation.beir import eval_retrieval
    from chatkit.indexing.report import QuietReporter
    from chatkit.training.registry import default_adapter

    items = load_qa(qa)[: limit or None]
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "qa": str(qa), "beir": str(beir)}
    say(f"retrieval on {beir.name}...")
    out["retrieval"] = eval_retrieval(settings, paths, beir, "test", ("dense", "bm25", "hybrid"), limit, QuietReporter(say), say)
    active = default_adapter(paths)
    if active:
        written = compare_adapters(settings, paths, qa, [active], collections, limit, None, say, progress)[0]
        data = json.loads((written.folder / "results.json").read_text(encoding="utf-8"))
        out["answers"] = {name: d["summary"] for name, d in data.items()}
        out["compare"] = {"report": str(written.folder), **written.gate.verdict_json()}
    else:
        from chatkit.assembly import build_engine
        from chatkit.evaluation.preflight import check_collections

        check_collections(settings, paths, list(collections or settings.engine.collections))
        engine = build_engine(settings, paths, collections, progress=say)
        out["answers"] = {"base": summarize(answer_models(engine, items, ["base"], generation_cache(paths), progress)["base"])}
        out["compare"] = None
    folder = paths.reports / f"eval-all-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    (folder / "report.md").write_text(suite_markdown(out), encoding="utf-8")
    return SuiteRun(out, folder)


def suite_markdown(out: dict[str, Any]) -> str:
    lines = ["# chatkit eval all", "", f"{out['date']}; QA {out['qa']}; BEIR {out['beir']}", "", f"## Retrieval ({Path(out['beir']).name}, test split)", "",
             "| mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['mode']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} |" for r in out["retrieval"]]
    names = list(out["answers"])
    lines += ["", "## Answers", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in ANSWER_KEYS:
        lines.append(f"| {k} | " + " | ".join("-" if out["answers"][n].get(k) is None else f"{out['answers'][n][k]:.3f}" for n in names) + " |")
    c = out["compare"]
    lines += ["", "## Compare", ""]
    lines.append(f"{c['adapter']} vs {c['baseline']}: **{c['verdict']}** ({c['report']})" if c else "no promoted adapter: nothing to compare")
    return "\n".join(lines) + "\n"
