"""The index, search and eval retrieval verbs through `python -m chatkit`: output, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

NOTES = {
    "lora.md": "# LoRA\n\nLoRA trains low-rank adapter matrices while the base weights stay frozen.\n",
    "faiss.md": "# FAISS\n\nFAISS finds nearest neighbour vectors with flat and HNSW indexes.\n",
    "cooking.txt": "Risotto\n\nToast the rice and add warm stock slowly.\n",
}


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    return folder


def one_line_error(r, starts: str) -> None:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {starts}"), r.stderr


def test_add_search_ls_stats_status_rm_drop(notes: Path) -> None:
    r = run_cli("index", "add", str(notes), "--collection", "notes", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["added"], summary["failed"]) == (3, 0) and summary["embedded"] > 0

    r = run_cli("search", "low-rank adapters", "-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mode"] == "hybrid" and out["hits"][0]["doc_id"] == "notes/lora"
    assert {"score", "dense_score", "bm25_score", "title", "source", "heading", "text", "page"} <= set(out["hits"][0])

    r = run_cli("search", "nearest neighbour vectors", "--mode", "bm25", "-c", "notes")
    assert r.returncode == 0 and "FAISS" in r.stdout and "faiss.md" in r.stdout

    (notes / "cooking.txt").write_text("Risotto\n\nToast the rice, then add hot stock.\n")
    (notes / "new.md").write_text("# New\n\nfresh")
    r = run_cli("index", "status", str(notes), "-c", "notes", "--json")
    status = json.loads(r.stdout)
    assert (status["new"], status["changed"], status["unchanged"], status["missing"]) == (1, 1, 2, 0)

    r = run_cli("index", "add", str(notes), "-c", "notes")
    assert r.returncode == 0 and "1 added, 1 updated, 2 unchanged" in " ".join(r.stderr.split())

    r = run_cli("index", "stats", "-c", "notes", "--json")
    stats = json.loads(r.stdout)
    assert stats["documents"] == 4 and stats["vectors"] == stats["chunks"] and stats["embedder"].endswith(":384")

    r = run_cli("index", "ls", "-c", "notes", "--json")
    assert sorted(d["doc_id"] for d in json.loads(r.stdout)) == ["notes/cooking", "notes/faiss", "notes/lora", "notes/new"]

    r = run_cli("index", "rm", "notes/new", "-c", "notes")
    assert r.returncode == 0 and "removed 1" in r.stderr
    r = run_cli("index", "rm", "notes/nope", "-c", "notes")
    one_line_error(r, "no document 'notes/nope'")

    r = run_cli("index", "drop", "--collection", "notes")
    assert r.returncode == 0
    r = run_cli("index", "ls", "--json")
    assert json.loads(r.stdout) == []


def test_missing_path_is_one_line_error(tmp_path: Path) -> None:
    r = run_cli("index", "add", str(tmp_path / "nope"))
    one_line_error(r, "path not found")


def test_search_on_missing_or_no_collection_is_one_line_error() -> None:
    one_line_error(run_cli("search", "anything"), "there are no collections")
    one_line_error(run_cli("search", "anything", "-c", "ghost"), "collection 'ghost' does not exist")


def test_bad_files_give_warnings_a_failed_count_and_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nuseful text")
    (folder / "empty.txt").write_text("")
    (folder / "fake.txt").write_bytes(b"\x7fELF\x00\x00binary")
    (folder / "rows.jsonl").write_text('{"text": "ok"}\nnot json\n')
    r = run_cli("index", "add", str(folder), "-c", "mixed")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    text = " ".join(r.stderr.split())
    assert "2 added" in text and "3 failed" in text and "rows.jsonl:2" in text


def test_eval_retrieval_on_a_tiny_beir_folder(tmp_path: Path) -> None:
    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": "Aspirin reduces the risk of heart attacks.", "d2": "Vitamin D deficiency is linked to bone loss.",
            "d3": "Coffee consumption improves short-term alertness.", "d4": "Regular exercise lowers blood pressure."}
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    queries = {"q1": "aspirin heart attack", "q2": "bone loss vitamin", "q3": "exercise and blood pressure"}
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t1\n")
    r = run_cli("eval", "retrieval", "--beir", str(beir), "--mode", "bm25", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "mode", "queries"} <= set(out)
    assert out["mode"] == "bm25" and out["queries"] == 3 and out["ndcg@10"] == 1.0
    r = run_cli("eval", "retrieval", "--beir", str(beir), "--mode", "all", "--json")
    rows = json.loads(r.stdout)
    assert [x["mode"] for x in rows] == ["dense", "bm25", "hybrid"] and all(x["embedded"] == 0 for x in rows)
    one_line_error(run_cli("eval", "retrieval", "--beir", str(beir), "--split", "dev"), "no qrels for split 'dev'")


def test_eval_answers_on_a_bad_qa_file_fails_before_loading_models(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "1", "question": "q"}\nnot json\n')
    r = run_cli("eval", "answers", "--qa", str(qa))
    one_line_error(r, f"{qa}: line 1: missing answer, doc_ids, keywords, answerable; line 2: bad JSON")


def test_search_skips_an_empty_collection_with_a_warning(notes: Path) -> None:
    import os

    from chatkit.config import Paths, Settings
    from chatkit.retrieval.service import collection

    assert run_cli("index", "add", str(notes), "-c", "notes").returncode == 0
    empty = collection(Settings(), Paths(Path(os.environ["CHATKIT_HOME"])), "empty")  # what a failed first add leaves
    empty.store.counts()
    empty.close()
    r = run_cli("search", "low-rank adapters", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hits"][0]["doc_id"] == "notes/lora"
    assert "warning: collection 'empty' is empty" in r.stderr
    one_line_error(run_cli("search", "  "), "the query is empty")
