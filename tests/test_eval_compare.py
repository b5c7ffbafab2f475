"""`eval compare`: bootstrap CIs and the verdict on hand-built results, the report files, the promotion
gate that reads them, bad input as one-line errors, and the CLI end to end with a tiny model."""

from __future__ import annotations

import json
import os
import random
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


def item(i: int, f1: float, cp: float, latency: float = 1.0) -> ItemResult:
    return ItemResult(f"q{i}", f"question {i}", "ref", f"answer {i} {f1:.2f}", True, False, ["d"], ["d"], ["d"], latency,
                      {"token_f1": f1, "citation_precision": cp, "rouge_l": f1, "retrieval_recall": 1.0})


def runs(shift_f1: float, shift_cp: float, n: int = 40) -> tuple[list[ItemResult], list[ItemResult]]:
    rng = random.Random(3)
    base = [item(i, rng.uniform(0.2, 0.6), rng.choice([0.0, 0.5, 1.0])) for i in range(n)]
    other = [item(i, min(1.0, max(0.0, b.scores["token_f1"] + shift_f1 + rng.uniform(-0.05, 0.05))),  # type: ignore[operator]
                  min(1.0, max(0.0, b.scores["citation_precision"] + shift_cp)), 1.5) for i, b in enumerate(base)]  # type: ignore[operator]
    return base, other


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


@pytest.mark.parametrize(("f1", "cp", "verdict"), [(0.2, 0.0, BETTER), (0.0, 0.3, BETTER), (-0.2, 0.0, WORSE),
                                                    (0.3, -0.3, WORSE), (0.0, 0.0, SAME)])
def test_verdict_follows_the_confidence_intervals(f1: float, cp: float, verdict: str) -> None:
    base, other = runs(f1, cp)
    c = compare(base, other, "base", "a")
    assert c.verdict == verdict, c.reasons
    m = c.metric("token_f1")
    assert m.n == 40 and m.ci_low <= m.diff <= m.ci_high
    assert c.wins + c.ties + c.losses == 40
    if verdict == SAME:
        assert (c.wins, c.losses) != (0, 0) or m.p_value == 1.0
    assert abs(c.changes[0].delta) >= abs(c.changes[-1].delta)
    assert c.verdict_json()["better"] is (verdict == BETTER) and c.verdict_json()["worse"] is (verdict == WORSE)


def test_identical_runs_are_all_ties() -> None:
    base, _ = runs(0, 0)
    c = compare(base, base)
    assert (c.wins, c.ties, c.losses) == (0, 40, 0) and c.verdict == SAME
    assert c.metric("token_f1").p_value == 1.0 and c.metric("token_f1").ci_low == 0.0


def test_report_files_and_pngs(tmp_path: Path) -> None:
    from PIL import Image

    base, other = runs(0.2, 0.0)
    c = compare(base, other, "base", "a")
    folder = write_comparison(tmp_path, c, [compare(base, other, "other", "a")], {"qa": "x.jsonl"})
    assert folder == tmp_path / "compare-a"
    stamped = [p for p in tmp_path.iterdir() if p.name.startswith("compare-a-")]
    assert len(stamped) == 1 and sorted(p.name for p in stamped[0].iterdir()) == sorted(p.name for p in folder.iterdir())
    for png in ("metrics.png", "items.png", "latency.png"):
        path = folder / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        with Image.open(path) as im:
            assert im.width >= 800 and im.height >= 300
    md = (folder / "report.md").read_text()
    assert "**better**" in md and "| token_f1 | 40 |" in md and "Items that changed most" in md
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<table>" in page
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["better"] is True and verdict["baseline"] == "base" and verdict["vs"]["other"]["adapter"] == "a"


def test_gate_needs_a_comparison_that_is_not_worse_than_the_current_default() -> None:
    paths = home_paths()
    with pytest.raises(AdapterError, match="no evaluation of 'a'"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(*runs(-0.2, 0.0), "base", "a"))
    with pytest.raises(AdapterError, match="worse than the current default 'base': token_f1"):
        check_verdict(paths, "a")
    write_comparison(paths.reports, compare(*runs(0.0, 0.0), "base", "a"))
    assert check_verdict(paths, "a")["verdict"] == SAME
    write_comparison(paths.reports, compare(*runs(0.2, 0.0), "base", "a"))
    assert check_verdict(paths, "a")["better"] is True
    with pytest.raises(AdapterError, match="compared against 'base', but the current default is 'b'"):
        check_verdict(paths, "a", current="b")


def test_promote_cli_refuses_worse_accepts_better_and_force(tiny_model_dir: Path) -> None:
    model = ["--set", f"models.dialogue={tiny_model_dir}"]
    make_adapter("a", tiny_model_dir)
    paths = home_paths()
    write_comparison(paths.reports, compare(*runs(-0.2, 0.0), "base", "a"))
    one_line_error(run_cli(*model, "adapters", "promote", "a"), "worse than the current default 'base'")
    r = run_cli(*model, "adapters", "promote", "a", "--force")
    assert r.returncode == 0 and "--force: promoting despite" in r.stderr
    run_cli("adapters", "rollback")
    write_comparison(paths.reports, compare(*runs(0.2, 0.0), "base", "a"))
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


def test_compare_cli_with_a_tiny_model_and_adapter(tiny_model_dir: Path, notes_home: Path, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QA))
    make_adapter("tiny", tiny_model_dir, b_std=0.5)
    args = ["--set", f"models.dialogue={tiny_model_dir}", "--set", "models.dtype=float32", "--set", "generation.max_new_tokens=6",
            "eval", "compare", "--qa", str(qa), "--adapter", "tiny", "--collection", "notes", "--limit", "3", "--style", "generative"]
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)[0]
    assert out["adapter"] == "tiny" and out["baseline"] == "base" and out["items"] == 3
    assert out["verdict"] in (BETTER, WORSE, SAME) and out["better"] is (out["verdict"] == BETTER)
    folder = home_paths().reports / "compare-tiny"
    assert {"report.md", "report.html", "verdict.json", "metrics.png", "items.png", "latency.png", "results.json"} <= {p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    assert [i["id"] for i in results["tiny"]["items"]] == ["q1", "q2", "q3"]
    again = run_cli(*args)  # generations come from the cache; the verdict is the same
    assert again.returncode == 0 and f"tiny vs base: {out['verdict']}" in again.stdout, again.stderr
    one_line_error(run_cli(*[a if a != "notes" else "hollow" for a in args]), "collection 'hollow' is empty")


def test_qa_retrieval_scores_gold_doc_ids(notes_home: Path, tmp_path: Path) -> None:
    from chatkit.evaluation.retrieval import score_ranking

    assert score_ranking(["x", "g2", "g1"], ["g1", "g2"], (1, 2, 3)) == {"recall@1": 0.0, "recall@2": 0.5, "recall@3": 1.0, "mrr@10": 0.5}
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QA))
    one_line_error(run_cli("eval", "retrieval", "--qa", str(qa), "--collection", "hollow"), "collection 'hollow' is empty")
    r = run_cli("eval", "retrieval", "--qa", str(qa), "--collection", "notes", "--mode", "all", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["mode"] for x in rows] == ["dense", "bm25", "hybrid"]
    assert all(x["queries"] == 3 and x["recall@10"] == 1.0 and x["mrr@10"] > 0.5 for x in rows)
