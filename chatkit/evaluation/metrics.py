"""Answer metrics that need no LLM judge, so they run offline and give the same number every time."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_CITATION = re.compile(r"\[\d{1,2}\]")

# Function words carry no claim, so groundedness ignores them.
STOPWORDS = frozenset(
    "a an the and or but if then than so of to in on at by for with from as is are was were be been being it its "
    "this that these those there here which who whom what when where why how do does did done can could should "
    "would may might will shall not no yes you your we our they their them he she his her i me my also such into "
    "about over under more most less very just only any all each both either neither one two use used using".split()
)


def normalize(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation, articles and extra whitespace."""
    text = _CITATION.sub(" ", text.lower())
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def keyword_recall(prediction: str, keywords: Sequence[str]) -> float | None:
    if not keywords:
        return None
    norm = f" {normalize(prediction)} "
    return sum(f" {normalize(k)} " in norm for k in keywords) / len(keywords)


def rouge_l(prediction: str, reference: str) -> float:
    from rouge_score import rouge_scorer

    if not prediction.strip() or not reference.strip():
        return 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, _CITATION.sub(" ", prediction))["rougeL"].fmeasure)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, 0-100) over all items."""
    import sacrebleu

    if not predictions:
        return 0.0
    cleaned = [_CITATION.sub(" ", p) for p in predictions]
    return float(sacrebleu.corpus_bleu(cleaned, [list(references)]).score)


def sentence_bleu(prediction: str, reference: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(_CITATION.sub(" ", prediction), [reference]).score)


def citation_precision(cited_doc_ids: Sequence[str], gold_doc_ids: Sequence[str]) -> float:
    """Share of cited passages that come from a gold document; no citation scores 0 (it failed to cite)."""
    if not cited_doc_ids:
        return 0.0
    gold = set(gold_doc_ids)
    return sum(d in gold for d in cited_doc_ids) / len(cited_doc_ids)


def citation_recall(cited_doc_ids: Sequence[str], gold_doc_ids: Sequence[str]) -> float:
    if not gold_doc_ids:
        return 0.0
    return len(set(cited_doc_ids) & set(gold_doc_ids)) / len(set(gold_doc_ids))


def groundedness(answer: str, cited_texts: Sequence[str]) -> float:
    """Share of the answer's content words that appear in the passages it cites."""
    words = [w for w in tokens(answer) if w not in STOPWORDS]
    if not words:
        return 0.0
    source = set(tokens(" ".join(cited_texts)))
    return sum(w in source for w in words) / len(words)


def gold_doc_retrieved(retrieved_doc_ids: Sequence[str], gold_doc_ids: Sequence[str]) -> float:
    """1.0 when any gold document is among the retrieved passages, else 0.0; its mean is a hit rate.

    Not a Recall@k: the ranking measures (nDCG@k, Recall@k, MRR) are defined once, in evaluation.ranking.
    """
    return float(bool(set(retrieved_doc_ids) & set(gold_doc_ids)))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def abstention_scores(abstained: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float]:
    """Precision/recall of abstaining, where the positive class is 'unanswerable'."""
    tp = sum(a and not ok for a, ok in zip(abstained, answerable, strict=True))
    fp = sum(a and ok for a, ok in zip(abstained, answerable, strict=True))
    fn = sum((not a) and (not ok) for a, ok in zip(abstained, answerable, strict=True))
    correct = sum(a == (not ok) for a, ok in zip(abstained, answerable, strict=True))
    return {
        "abstention_precision": tp / (tp + fp) if tp + fp else 0.0,
        "abstention_recall": tp / (tp + fn) if tp + fn else 0.0,
        "abstention_accuracy": correct / len(abstained) if abstained else 0.0,
    }
