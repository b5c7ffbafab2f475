"""`eval answers`: run the engine over a QA file and score every answer without an LLM judge."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatkit.engine import ChatEngine, ChatOptions
from chatkit.errors import DataError, ModelError
from chatkit.evaluation import metrics as m
from chatkit.inputs import json_lines, string_list, typed_field
from chatkit.types import Answer

REQUIRED = ("id", "question", "answer", "doc_ids", "keywords", "answerable")


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answer: str
    doc_ids: tuple[str, ...]
    keywords: tuple[str, ...]
    answerable: bool
    kind: str = ""  # direct, casual, multi-part, ..., near-topic, off-topic (corpora/README.md)


QA_HINT = "pass --qa corpora/qa/dev.jsonl, --qa corpora/qa/test.jsonl or your own file"


def load_qa(path: Path) -> list[QAItem]:
    """Every item of a QA file; bad lines (encoding, JSON, nesting, missing fields, wrong types) are listed by number."""
    items, errors = [], []
    for parsed in json_lines(path, "QA file", QA_HINT):
        where = f"line {parsed.line}"
        if parsed.error:
            errors.append(f"{where}: {parsed.error}")
            continue
        row = parsed.value
        missing = [k for k in REQUIRED if k not in row] if isinstance(row, dict) else list(REQUIRED)
        if missing:
            errors.append(f"{where}: missing {', '.join(missing)}")
            continue
        try:
            items.append(qa_item(row, where))
        except DataError as exc:
            errors.append(exc.message)
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise DataError(f"{path}: {'; '.join(errors[:3])}{more}",
                        f"each line needs {', '.join(REQUIRED)} (doc_ids and keywords: lists of strings; answerable: true/false)")
    if not items:
        raise DataError(f"{path} has no QA items", "one JSON object per line")
    return items


def qa_item(row: dict[str, Any], where: str) -> QAItem:
    ident = typed_field(row, "id", (str, int), where)
    kind = row.get("kind", "")
    return QAItem(str(ident), typed_field(row, "question", str, where), typed_field(row, "answer", str, where),
                  string_list(row, "doc_ids", where), string_list(row, "keywords", where),
                  typed_field(row, "answerable", bool, where), kind if isinstance(kind, str) else str(kind))


class GenerationCache:
    """Generations by the engine's key (model, dtype, adapter, style, decoding, prompt): re-runs are
    instant and an interrupted run resumes where it stopped."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT, stats TEXT)")

    def get(self, key: str) -> tuple[str, dict[str, float]] | None:
        row = self.db.execute("SELECT text, stats FROM generations WHERE key = ?", (key,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put(self, key: str, text: str, stats: dict[str, float]) -> None:
        self.db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?)", (key, text, json.dumps(stats)))


@dataclass
class ItemResult:
    id: str
    question: str
    reference: str
    prediction: str
    answerable: bool
    abstained: bool
    gold_doc_ids: list[str]
    cited_doc_ids: list[str]
    retrieved_doc_ids: list[str]
    latency_s: float
    scores: dict[str, float | None] = field(default_factory=dict)
    kind: str = ""


def answer_item(engine: ChatEngine, item: QAItem, cache: GenerationCache | None, k: int | None = None,
                perplexity: bool = True) -> ItemResult:
    """One QA item through the engine (generations reused from `cache`), scored."""
    answer: Answer | None = None
    retrieved: list[str] = []
    prompt_ids: list[int] = []
    for event in engine.chat(item.question, (), ChatOptions(k=k, cache=cache)):
        if event.kind == "retrieval":
            retrieved = [h.chunk.doc_id for h in event.hits]
        elif event.kind == "error":
            raise ModelError(f"item {item.id}: {event.text}", "rerun; answers already generated come from the cache")
        elif event.kind == "answer":
            answer, prompt_ids = event.answer, list(event.data.get("prompt_ids", []))
    assert answer is not None
    t = answer.timings
    # The latency a user would see, also when the generation came from the cache.
    latency = t.get("retrieval_s", 0.0) + t.get("generation_s", 0.0) if t.get("cached") else t["total_s"]
    cited_ids = [c.doc_id for c in answer.citations]
    cited_texts = [answer.hits[c.n - 1].chunk.text for c in answer.citations]
    scores: dict[str, float | None] = {"gold_doc_retrieved": m.gold_doc_retrieved(retrieved, item.doc_ids) if item.answerable else None}
    if item.answerable:
        scores.update(
            token_f1=m.token_f1(answer.text, item.answer), exact_match=m.exact_match(answer.text, item.answer),
            rouge_l=m.rouge_l(answer.text, item.answer), sentence_bleu=m.sentence_bleu(answer.text, item.answer),
            keyword_recall=m.keyword_recall(answer.text, item.keywords),
            citation_precision=m.citation_precision(cited_ids, item.doc_ids) if not answer.abstained else 0.0,
            citation_recall=m.citation_recall(cited_ids, item.doc_ids),
            groundedness=m.groundedness(answer.text, cited_texts) if cited_texts else 0.0,
        )
        if perplexity and prompt_ids:
            scores["reference_nll"] = engine.reference_nll(prompt_ids, item.answer)
    return ItemResult(item.id, item.question, item.answer, answer.text, item.answerable, answer.abstained, list(item.doc_ids),
                      cited_ids, retrieved, latency, scores, item.kind)


def run_answers(engine: ChatEngine, items: Sequence[QAItem], cache: GenerationCache | None = None, k: int | None = None,
                on_item: Callable[[ItemResult], None] | None = None, perplexity: bool = True) -> list[ItemResult]:
    results = []
    for item in items:
        result = answer_item(engine, item, cache, k, perplexity)
        results.append(result)
        if on_item:
            on_item(result)
    return results


def _mean(values: Sequence[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else 0.0


def summarize(results: Sequence[ItemResult]) -> dict[str, Any]:
    answerable = [r for r in results if r.answerable]
    summary: dict[str, Any] = {"items_total": len(results), "answerable": len(answerable), "unanswerable": len(results) - len(answerable)}
    for name in ("token_f1", "exact_match", "rouge_l", "keyword_recall", "citation_precision", "citation_recall", "groundedness", "gold_doc_retrieved"):
        summary[name] = _mean([r.scores.get(name) for r in answerable])
    summary["bleu"] = m.bleu([r.prediction for r in answerable], [r.reference for r in answerable])
    nlls = [r.scores["reference_nll"] for r in answerable if r.scores.get("reference_nll") is not None]
    summary["reference_perplexity"] = math.exp(_mean(nlls)) if nlls else None
    summary.update(m.abstention_scores([r.abstained for r in results], [r.answerable for r in results]))
    # What users feel, apart: answerable questions refused, and refusals by kind of unanswerable question.
    summary["wrongly_refused"] = _mean([float(r.abstained) for r in answerable]) if answerable else None
    for kind in ("near-topic", "off-topic"):
        of_kind = [float(r.abstained) for r in results if not r.answerable and r.kind == kind]
        summary[f"refused_{kind.replace('-', '_')}"] = _mean(of_kind) if of_kind else None
    latencies = [r.latency_s for r in results]
    summary["latency_p50_s"] = m.percentile(latencies, 50)
    summary["latency_p95_s"] = m.percentile(latencies, 95)
    return summary


def report(results: Sequence[ItemResult], meta: dict[str, Any]) -> dict[str, Any]:
    return summarize(results) | {"meta": meta, "items": [asdict(r) for r in results]}
