from __future__ import annotations

import collections
import math
import re
import string

import pytest

from chatkit.errors import InputError
from chatkit.evaluation import metrics as m
from chatkit.evaluation.ranking import as_run, mean_scores, ranked_documents, score_queries
from chatkit.types import Chunk, Hit


def squad_f1(prediction: str, ground_truth: str) -> float:
    """The official SQuAD v1.1 evaluation script's F1, as the reference implementation."""

    def normalize_answer(s: str) -> str:
        s = s.lower()
        s = "".join(ch for ch in s if ch not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(truth_tokens)
    return (2 * precision * recall) / (precision + recall)


SAMPLE = [
    ("LoRA freezes the base weights and trains two small matrices.", "LoRA trains two low-rank matrices while the weights stay frozen."),
    ("The capital is Canberra.", "Canberra"),
    ("Perplexity is the exponential of the average negative log-likelihood.", "exp of mean NLL per token"),
    ("FAISS, a library for vector search!", "FAISS is a library for efficient similarity search of dense vectors."),
    ("totally unrelated", "nothing in common here"),
]


@pytest.mark.parametrize(("pred", "ref"), SAMPLE)
def test_token_f1_agrees_with_the_squad_script(pred: str, ref: str) -> None:
    assert m.token_f1(pred, ref) == pytest.approx(squad_f1(pred, ref))


def test_token_f1_hand_computed() -> None:
    # pred tokens: lora trains two matrices (4); ref: lora trains two small matrices (5); common 4
    assert m.token_f1("LoRA trains two matrices", "LoRA trains two small matrices") == pytest.approx(2 * 1 * 0.8 / 1.8)
    assert m.token_f1("", "something") == 0.0
    assert m.token_f1("", "") == 1.0
    assert m.token_f1("It trains [1] matrices [2].", "it trains matrices") == 1.0  # citation markers are not words


def test_exact_match_and_keywords() -> None:
    assert m.exact_match("The Canberra.", "canberra") == 1.0
    assert m.exact_match("Sydney", "Canberra") == 0.0
    assert m.keyword_recall("LoRA uses low-rank matrices", ["low-rank", "frozen"]) == 0.5
    assert m.keyword_recall("anything", []) is None
    assert m.keyword_recall("", ["lora"]) == 0.0


def test_bleu_matches_sacrebleu_directly() -> None:
    import sacrebleu

    preds = [p for p, _ in SAMPLE]
    refs = [r for _, r in SAMPLE]
    assert m.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert m.bleu([], []) == 0.0
    assert m.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)


def test_rouge_l() -> None:
    assert m.rouge_l("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert m.rouge_l("", "the cat") == 0.0
    assert 0 < m.rouge_l("the cat was sitting", "the cat sat") < 1


def test_citation_metrics_including_no_citations() -> None:
    assert m.citation_precision(["a", "b"], ["a"]) == 0.5
    assert m.citation_precision([], ["a"]) == 0.0
    assert m.citation_recall(["a"], ["a", "c"]) == 0.5
    assert m.citation_recall([], []) == 0.0


def test_groundedness() -> None:
    passage = "LoRA freezes the pre-trained weights and learns two low-rank matrices."
    assert m.groundedness("LoRA learns low-rank matrices [1].", [passage]) == 1.0
    # content words: lora, invented, 1987 -> 1 of 3 in the passage
    assert m.groundedness("LoRA was invented in 1987.", [passage]) == pytest.approx(1 / 3)
    assert m.groundedness("", [passage]) == 0.0


def test_abstention_scores() -> None:
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, False]
    s = m.abstention_scores(abstained, answerable)
    assert s["abstention_precision"] == pytest.approx(2 / 3)
    assert s["abstention_recall"] == pytest.approx(2 / 3)
    assert s["abstention_accuracy"] == pytest.approx(3 / 5)
    assert m.abstention_scores([], [])["abstention_recall"] == 0.0


def test_percentiles_and_gold_doc_retrieved() -> None:
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile([], 95) == 0.0
    assert m.gold_doc_retrieved(["x", "a"], ["a", "b"]) == 1.0  # any gold document is a hit, rank ignored
    assert m.gold_doc_retrieved(["x", "y"], ["a"]) == 0.0 and m.gold_doc_retrieved(["x"], []) == 0.0


# Two queries ranked by hand. q1: x, g2, g1 with g1 and g2 relevant; q2: g3, y with g3 relevant.
RUN = {"q1": as_run(["x", "g2", "g1"]), "q2": as_run(["g3", "y"])}
QRELS = {"q1": {"g1": 1, "g2": 1}, "q2": {"g3": 1, "z": 0}}
NDCG3_Q1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))  # gains at ranks 2, 3 over the ideal 1, 2


def test_ranking_measures_match_hand_computed_values() -> None:
    names = ("ndcg@3", "recall@1", "recall@2", "recall@3", "p@2", "map", "mrr@1", "mrr")
    per_query = score_queries(RUN, QRELS, names)
    assert per_query["q1"] == pytest.approx({"ndcg@3": NDCG3_Q1, "recall@1": 0.0, "recall@2": 0.5, "recall@3": 1.0, "p@2": 0.5,
                                             "map": (1 / 2 + 2 / 3) / 2, "mrr@1": 0.0, "mrr": 0.5})
    assert per_query["q2"] == pytest.approx({"ndcg@3": 1.0, "recall@1": 1.0, "recall@2": 1.0, "recall@3": 1.0, "p@2": 0.5,
                                             "map": 1.0, "mrr@1": 1.0, "mrr": 1.0})
    means = mean_scores(per_query, names)
    assert means["ndcg@3"] == pytest.approx((NDCG3_Q1 + 1) / 2) and means["recall@2"] == pytest.approx(0.75)
    assert means["mrr"] == pytest.approx(0.75) and means["mrr@1"] == pytest.approx(0.5)


def test_ranking_a_query_with_no_hits_scores_zero_and_unjudged_queries_are_left_out() -> None:
    per_query = score_queries({"q1": {}, "q2": RUN["q2"], "unjudged": {"a": 1.0}}, QRELS, ("recall@3", "mrr@10"))
    assert per_query == {"q1": {"recall@3": 0.0, "mrr@10": 0.0}, "q2": {"recall@3": 1.0, "mrr@10": 1.0}}
    with pytest.raises(InputError, match="unknown ranking measure 'recall'"):
        score_queries(RUN, QRELS, ("recall",))


def test_ranked_documents_keep_each_document_at_its_best_chunk() -> None:
    hits = [Hit(Chunk(d, i, "text", d, (), 0, 4), 1.0 - i / 10, i + 1) for i, d in enumerate(("a", "b", "a", "c", "d"))]
    assert ranked_documents(hits, 3) == ["a", "b", "c"]
    assert list(as_run(["a", "b", "c"]).values()) == sorted(as_run(["a", "b", "c"]).values(), reverse=True)


def test_summary_reports_wrongful_refusals_and_refusals_by_kind() -> None:
    from chatkit.evaluation.answers import ItemResult, summarize

    def item(answerable: bool, abstained: bool, kind: str) -> ItemResult:
        scores: dict[str, float | None] = {"token_f1": 0.5} if answerable else {}
        return ItemResult("x", "q", "a", "p", answerable, abstained, [], [], [], 0.1, scores, kind)

    results = [item(True, False, "direct")] * 3 + [item(True, True, "casual"),
               item(False, True, "near-topic"), item(False, False, "near-topic"), item(False, True, "off-topic")]
    summary = summarize(results)
    assert summary["wrongly_refused"] == 0.25
    assert summary["refused_near_topic"] == 0.5 and summary["refused_off_topic"] == 1.0
