"""`eval compare`: bootstrap CIs and the verdict on hand-built results, the report files, the promotion
gate that reads them, bad input as one-line errors, and the CLI end to end with a tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chatkit.config import Paths
from chatkit.errors import AdapterError
from chatkit.evaluation.answers import ItemResult
from chatkit.evaluation.compare import BETTER, SAME, WORSE, bootstrap_ci, compare, paired_p_value
from chatkit.evaluation.report import write_comparison
from chatkit.training.gate import check_verdict
from tests.conftest import run_cli
from tests.test_training_registry import make_adapter, one_line_error

DOCS = {
    "lora.md": "# LoRA\n\nLoRA freezes the pre-trained weights and trains two small low-rank matrices, so memory drops.\n",
    "faiss.md": "# FAISS\n\nFAISS finds nearest neighbour vectors with flat and HNSW indexes.\n",
    "perplexity.md": "# Perplexity\n\nPerplexity is the exponential of the average negative log-likelihood per token.\n",
}
QA = [
    {"id": "q1", "question": "What does LoRA freeze?", "answer": "LoRA freezes the pre-trained weights.", "doc_ids": ["notes/lora"],
     "keywords": ["pre-trained weights"], "answerable": True},
    {"id": "q2", "question": "What does FAISS find?", "answer": "Nearest neighbour vectors.", "doc_ids": ["notes/faiss"],
     "keywords": ["nearest neighbour"], "answerable": True},
    {"id": "q3", "question": "What is perplexity?", "answer": "The exponential of the average negative log-likelihood per token.",
     "doc_ids": ["notes/perplexity"], "keywords": ["exponential"], "answerable": True},
    {"id": "q4", "question": "Who won the 1998 world cup?", "answer": "The documents don't cover this.", "doc_ids": [],
     "keywords": [], "answerable": False},
]


N, U = 20, 10
BASE_F1 = [0.2 + 0.02 * i for i in range(N)]
DEFAULT_SCORES = {"citation_precision": 0.5, "rouge_l": 0.4, "keyword_recall": 0.6, "groundedness": 0.8, "gold_doc_retrieved": 1.0}


def results(f1: list[float], latency: float = 1.0, refuses: frozenset[int] = frozenset(), refused_unanswerable: int = U // 2,
            **scores: list[float]) -> list[ItemResult]:
    """N answerable items with the given per-item scores (those in `refuses` abstained, their scores left as
    they are so that only the refusal metrics move), then U unanswerable items, the first
    `refused_unanswerable` of them refused."""
    per_item = {k: scores.get(k, [v] * N) for k, v in DEFAULT_SCORES.items()}
    answered = [ItemResult(f"q{i}", f"question {i}", "ref", f"answer {i} {f1[i]:.2f}", True, i in refuses, ["d"], ["d"], ["d"], latency,
                           {"token_f1": f1[i], **{k: v[i] for k, v in per_item.items()}})
                for i in range(N)]
    return [*answered, *(ItemResult(f"u{j}", f"unanswerable {j}", "", "The documents don't cover this." if j < refused_unanswerable
                                    else f"made up {j}", False, j < refused_unanswerable, [], [], [], latency, {}) for j in range(U))]


def shifted(values: list[float], by: float) -> list[float]:
    return [v + by for v in values]


BASE = results(BASE_F1)  # answers every answerable item, refuses 5 of the 10 unanswerable ones
F1_BETTER = results(shifted(BASE_F1, 0.3), latency=1.5)  # every item gains 0.3 token F1
CP_WORSE = results(BASE_F1, citation_precision=[0.0] * N)  # same answers, citation precision 0.5 -> 0 on every item
F1_BETTER_CP_WORSE = results(shifted(BASE_F1, 0.3), citation_precision=[0.0] * N)
CANCELLING = results([f + (0.2 if i % 2 else -0.2) for i, f in enumerate(BASE_F1)])  # 10 wins, 10 losses, mean 0
ONE_WIN = results([f + (0.9 if i == 0 else 0.0) for i, f in enumerate(BASE_F1)])  # mean +0.045, but the CI reaches 0
ROUGE_WORSE = results(BASE_F1, rouge_l=[0.0] * N)  # only a metric the verdict does not read moves
# Refuses every unanswerable item now (+5), and 6 of the 20 answerable ones: the one-number abstention
# accuracy of before would call that a small gain.
REFUSES_MORE = results(BASE_F1, refuses=frozenset(range(6)), refused_unanswerable=U)
UNANSWERABLE_WORSE = results(BASE_F1, refused_unanswerable=0)  # answers all 10 unanswerable items, nothing else moves
UNANSWERABLE_BETTER = results(BASE_F1, refused_unanswerable=U)  # refuses all 10, nothing else moves


def home_paths() -> Paths:
    return Paths(Path(os.environ["CHATKIT_HOME"])).ensure()


def test_bootstrap_ci_is_deterministic_and_matches_the_normal_approximation() -> None:
    import numpy as np

    diffs = list(np.random.default_rng(1).normal(0.1, 0.2, 200))
    low, high = bootstrap_ci(diffs)
    assert bootstrap_ci(diffs) == (low, high)
    half = 1.96 * float(np.std(diffs, ddof=1)) / np.sqrt(len(diffs))
    assert low < float(np.mean(diffs)) < high
    assert abs((high - low) / 2 - half) / half < 0.1
    assert bootstrap_ci([0.25] * 10) == pytest.approx((0.25, 0.25))
    assert paired_p_value([0.0] * 10) == 1.0 and paired_p_value(diffs) < 0.001


def test_better_on_every_item_is_better() -> None:
    c = compare(BASE, F1_BETTER, "base", "a")
    assert c.verdict == BETTER
    assert c.reasons == ("token_f1 +0.300, 95% CI [+0.300, +0.300] entirely above 0",)
    f1 = c.metric("token_f1")
    assert (f1.n, f1.diff, f1.ci_low, f1.ci_high) == (N, pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    assert f1.p_value < 0.001
    assert (c.wins, c.ties, c.losses) == (N, 0, 0)
    # Refusals are counted per class: answerable items in one metric, unanswerable ones in the other.
    assert (c.metric("answered_when_answerable").n, c.metric("refused_when_unanswerable").n) == (N, U)
    assert c.verdict_json()["better"] is True and c.verdict_json()["worse"] is False


@pytest.mark.parametrize("candidate", [CP_WORSE, F1_BETTER_CP_WORSE], ids=["cp-worse", "f1-better-but-cp-worse"])
def test_a_headline_metric_worse_with_its_ci_below_zero_is_worse(candidate: list[ItemResult]) -> None:
    c = compare(BASE, candidate, "base", "a")
    assert c.verdict == WORSE
    assert c.reasons == ("citation_precision -0.500, 95% CI [-0.500, -0.500] entirely below 0",)
    assert c.verdict_json()["worse"] is True and c.verdict_json()["better"] is False


@pytest.mark.parametrize("metric", ["keyword_recall", "groundedness"])
def test_keyword_recall_or_groundedness_worse_is_worse(metric: str) -> None:
    c = compare(BASE, results(shifted(BASE_F1, 0.3), **{metric: [0.1] * N}), "base", "a")  # token F1 better on every item
    assert c.verdict == WORSE
    assert c.reasons == (f"{metric} {0.1 - DEFAULT_SCORES[metric]:+.3f}, 95% CI [{0.1 - DEFAULT_SCORES[metric]:+.3f}, "
                         f"{0.1 - DEFAULT_SCORES[metric]:+.3f}] entirely below 0",)


def test_refusing_answerable_questions_is_worse_even_when_more_unanswerables_are_refused() -> None:
    c = compare(BASE, REFUSES_MORE, "base", "a")
    answered, refused = c.metric("answered_when_answerable"), c.metric("refused_when_unanswerable")
    assert (answered.baseline_mean, answered.candidate_mean) == (1.0, pytest.approx(14 / 20)) and answered.below
    assert (refused.baseline_mean, refused.candidate_mean) == (0.5, 1.0) and refused.above
    assert c.verdict == WORSE
    assert len(c.reasons) == 1 and c.reasons[0].startswith("answered_when_answerable -0.300, 95% CI [-0.")
    assert c.reasons[0].endswith("entirely below 0")
    assert c.verdict_json()["reasons"] == list(c.reasons)


def test_answering_unanswerable_questions_is_worse() -> None:
    c = compare(BASE, UNANSWERABLE_WORSE, "base", "a")
    assert c.verdict == WORSE
    assert len(c.reasons) == 1 and c.reasons[0].startswith("refused_when_unanswerable -0.500, 95% CI [-0.")
    assert compare(UNANSWERABLE_WORSE, BASE, "x", "a").verdict == BETTER


def test_better_on_refusals_alone_is_better() -> None:
    c = compare(BASE, UNANSWERABLE_BETTER, "base", "a")
    assert c.verdict == BETTER
    assert len(c.reasons) == 1 and c.reasons[0].startswith("refused_when_unanswerable +0.500, 95% CI [+0.")


def test_identical_runs_show_no_difference() -> None:
    c = compare(BASE, BASE)
    assert c.verdict == SAME
    assert (c.wins, c.ties, c.losses) == (0, N, 0)
    f1 = c.metric("token_f1")
    assert (f1.diff, f1.ci_low, f1.ci_high, f1.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert c.verdict_json()["better"] is False and c.verdict_json()["worse"] is False


@pytest.mark.parametrize("candidate", [CANCELLING, ONE_WIN, ROUGE_WORSE], ids=["cancelling", "one-win", "rouge-only"])
def test_no_difference_unless_a_headline_ci_excludes_zero(candidate: list[ItemResult]) -> None:
    c = compare(BASE, candidate, "base", "a")
    assert c.verdict == SAME, c.reasons
    f1 = c.metric("token_f1")
    assert f1.ci_low <= 0 <= f1.ci_high


def test_wins_losses_and_the_largest_changes_first() -> None:
    c = compare(BASE, CANCELLING, "base", "a")
    assert (c.wins, c.ties, c.losses) == (N // 2, 0, N // 2)
    assert c.metric("token_f1").diff == pytest.approx(0.0)
    one = compare(BASE, ONE_WIN, "base", "a")
    assert (one.wins, one.ties, one.losses) == (1, N - 1, 0)
    assert one.changes[0].id == "q0" and one.changes[0].delta == pytest.approx(0.9)
    assert compare(BASE, ROUGE_WORSE).metric("rouge_l").below  # it moved, and the verdict still ignored it


def test_report_files_and_pngs(tmp_path: Path) -> None:
    from PIL import Image

    c = compare(BASE, F1_BETTER, "base", "a")
    folder = write_comparison(tmp_path, c, [compare(BASE, F1_BETTER, "other", "a")], {"qa": "x.jsonl"})
    assert folder == tmp_path / "compare-a"
    stamped = [p for p in tmp_path.iterdir() if p.name.startswith("compare-a-")]
    assert len(stamped) == 1 and sorted(p.name for p in stamped[0].iterdir()) == sorted(p.name for p in folder.iterdir())
    for png in ("metrics.png", "items.png", "latency.png"):
        path = folder / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        with Image.open(path) as im:
            assert im.width >= 800 and im.height >= 300
    md = (folder / "report.md").read_text()
    assert "**better**" in md and f"| token_f1 | {N} |" in md and "Items that changed most" in md
    assert f"| answered_when_answerable | {N} | 1.000 | 1.000 |" in md and f"| refused_when_unanswerable | {U} | 0.500 | 0.500 |" in md
    assert "Refusals: answerable items refused: base 0/20, a 0/20; unanswerable items refused: base 5/10, a 5/10." in md
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<table>" in page
    assert "<td>answered_when_answerable</td>" in page and "<td>refused_when_unanswerable</td>" in page
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["better"] is True and verdict["baseline"] == "base" and verdict["vs"]["other"]["adapter"] == "a"
    assert verdict["answered_when_answerable"] == [0.0, 0.0] and verdict["metrics"]["refused_when_unanswerable"]["n"] == U
    refusing = write_comparison(tmp_path, compare(BASE, REFUSES_MORE, "base", "r"))
    assert "unanswerable items refused: base 5/10, r 10/10" in (refusing / "report.md").read_text()
    assert "answerable items refused: base 0/20, r 6/20" in (refusing / "report.md").read_text()


def test_gate_refuses_a_headline_metric_worse_and_accepts_the_rest() -> None:
    paths = home_paths()
    with pytest.raises(AdapterError, match="no evaluation of 'a'"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(BASE, F1_BETTER_CP_WORSE, "base", "a"))
    with pytest.raises(AdapterError, match=r"worse than the current default 'base': citation_precision -0\.500, 95% CI \[-0\.500, -0\.500\]"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(BASE, REFUSES_MORE, "base", "a"))
    with pytest.raises(AdapterError, match=r"worse than the current default 'base': answered_when_answerable -0\.300"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(BASE, UNANSWERABLE_WORSE, "base", "a"))
    with pytest.raises(AdapterError, match=r"worse than the current default 'base': refused_when_unanswerable -0\.500"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(BASE, ROUGE_WORSE, "base", "a"))
    assert check_verdict(paths, "a")["verdict"] == SAME
    write_comparison(paths.reports, compare(BASE, F1_BETTER, "base", "a"))
    assert check_verdict(paths, "a")["better"] is True
    with pytest.raises(AdapterError, match="compared against 'base', but the current default is 'b'"):
        check_verdict(paths, "a", current="b")


def test_gate_reads_old_and_broken_verdict_files() -> None:
    paths = home_paths()
    verdict = paths.reports / "compare-a" / "verdict.json"
    verdict.parent.mkdir(parents=True)
    verdict.write_text(json.dumps({"better": False}))  # written before "worse" existed: only "better" passed
    with pytest.raises(AdapterError, match="not better than the current default 'base'"):
        check_verdict(paths, "a")
    verdict.write_text(json.dumps({"better": "yes"}))
    with pytest.raises(AdapterError, match="is unreadable"):
        check_verdict(paths, "a")


def test_promote_cli_refuses_worse_accepts_better_and_force(tiny_model_dir: Path) -> None:
    model = ["--set", f"models.dialogue={tiny_model_dir}"]
    make_adapter("a", tiny_model_dir)
    paths = home_paths()
    write_comparison(paths.reports, compare(BASE, CP_WORSE, "base", "a"))
    one_line_error(run_cli(*model, "adapters", "promote", "a"), "worse than the current default 'base': citation_precision")
    r = run_cli(*model, "adapters", "promote", "a", "--force")
    assert r.returncode == 0 and "--force: promoting despite" in r.stderr
    run_cli("adapters", "rollback")
    write_comparison(paths.reports, compare(BASE, F1_BETTER, "base", "a"))
    assert run_cli(*model, "adapters", "promote", "a").returncode == 0


def test_bad_qa_file_and_unknown_adapter_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QA[0]) + "\n" + json.dumps({"id": "x", "question": "q"}) + "\n")
    one_line_error(run_cli("eval", "compare", "--qa", str(bad), "--adapter", "a"), "line 2: missing answer, doc_ids")
    good = tmp_path / "qa.jsonl"
    good.write_text("".join(json.dumps(q) + "\n" for q in QA))
    one_line_error(run_cli("eval", "compare", "--qa", str(good), "--adapter", "nope"), "unknown adapter 'nope'")
    one_line_error(run_cli("eval", "compare", "--qa", str(good), "--adapter", "base"), "nothing to compare")


@pytest.fixture()
def notes_home(tmp_path: Path) -> Path:
    from chatkit.config import load_settings
    from chatkit.indexing import ensure_collection

    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    ensure_collection(load_settings(), home_paths(), "notes", folder)
    (tmp_path / "empty").mkdir()
    ensure_collection(load_settings(), home_paths(), "hollow", tmp_path / "empty")
    return folder


def test_compare_cli_of_an_adapter_that_changes_nothing_finds_no_difference(tiny_model_dir: Path, notes_home: Path,
                                                                           tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QA))
    make_adapter("noop", tiny_model_dir, b_std=0.0)  # LoRA B = 0: the adapter's answers are the base model's, token for token
    args = ["--set", f"models.dialogue={tiny_model_dir}", "--set", "models.dtype=float32", "--set", "generation.max_new_tokens=6",
            "eval", "compare", "--qa", str(qa), "--adapter", "noop", "--collection", "notes", "--limit", "3", "--style", "generative"]
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)[0]
    assert out["adapter"] == "noop" and out["baseline"] == "base" and out["items"] == 3
    assert out["verdict"] == SAME and (out["better"], out["worse"]) == (False, False)
    assert (out["wins"], out["ties"], out["losses"]) == (0, 3, 0) and out["token_f1"] == [0.0, 0.0]
    folder = home_paths().reports / "compare-noop"
    assert {"report.md", "report.html", "verdict.json", "metrics.png", "items.png", "latency.png", "results.json"} <= {p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    assert [i["id"] for i in results["noop"]["items"]] == ["q1", "q2", "q3"]
    assert [i["prediction"] for i in results["noop"]["items"]] == [i["prediction"] for i in results["base"]["items"]]
    again = run_cli(*args)  # generations come from the cache; the verdict is the same
    assert again.returncode == 0 and f"noop vs base: {SAME}" in again.stdout, again.stderr
    one_line_error(run_cli(*[a if a != "notes" else "hollow" for a in args]), "collection 'hollow' is empty")


def test_qa_retrieval_scores_gold_doc_ids_with_the_ranking_measures(notes_home: Path, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QA))
    one_line_error(run_cli("eval", "retrieval", "--qa", str(qa), "--collection", "hollow"), "collection 'hollow' is empty")
    r = run_cli("eval", "retrieval", "--qa", str(qa), "--collection", "notes", "--mode", "all", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["mode"] for x in rows] == ["dense", "bm25", "hybrid"]
    for row in rows:
        # Three notes, three questions with one gold note each: every gold note is in the top 10.
        assert row["queries"] == 3 and row["recall@10"] == 1.0 and row["mrr@10"] > 0.5 and 0.5 < row["ndcg@10"] <= 1.0
        for it in row["items"]:
            gold_rank = it["retrieved"].index({"q1": "notes/lora", "q2": "notes/faiss", "q3": "notes/perplexity"}[it["id"]]) + 1
            assert it["mrr@10"] == pytest.approx(1 / gold_rank) and it["recall@1"] == float(gold_rank == 1)
