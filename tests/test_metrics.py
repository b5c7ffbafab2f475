from __future__ import annotations

import collections
import re
import string

import pytest

from chatkit.evaluation import metrics as m


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


def test_percentiles_and_recall_at_k() -> None:
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile([], 95) == 0.0
    assert m.recall_at_k(["x", "a"], ["a"], 1) == 0.0 and m.recall_at_k(["x", "a"], ["a"], 2) == 1.0
