"""`chatkit data synth`: question rules, grounded answers with valid citations, the document split, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatkit.prompting import ABSTAIN_TEXT, parse_user_message
from chatkit.training.synth import (
    SynthOptions,
    answer_text,
    definition_question,
    heading_question,
    normalize,
    synthesize,
)
from chatkit.types import Chunk, Hit
from tests.conftest import read_jsonl, run_cli


@pytest.mark.parametrize(("heading", "question"), [
    ("Why LoRA is efficient", "Why is LoRA efficient?"),
    ("How LoRA works", "How does LoRA work?"),
    ("What the chatkit data dir contains", "What does the chatkit data dir contain?"),
    ("error: collection 'x' is empty", "What does \"error: collection 'x' is empty\" mean?"),
    ("Exercises", None),
    ("Summary", None),
])
def test_heading_questions(heading: str, question: str | None) -> None:
    assert heading_question(heading, "Some lesson") == question


def test_topic_headings_become_questions_about_the_topic() -> None:
    q = heading_question("LoRA hyperparameters", "LoRA and QLoRA")
    assert q is not None and q.endswith(("?", ".")) and "LoRA hyperparameters" in q


@pytest.mark.parametrize(("sentence", "question"), [
    ("A large language model (LLM) is a neural network trained on text.", "What is a large language model (LLM)?"),
    ("BM25 is a ranking function for keyword search.", "What is BM25?"),
    ("Embeddings are dense vectors that place similar texts close together.", None),  # no article after the verb
    ("It is a library for vector search.", None),
    ("In a one-hot representation each word is a vector as long as the vocabulary.", None),
])
def test_definition_questions(sentence: str, question: str | None) -> None:
    assert definition_question(sentence) == question


def test_answer_text_cites_every_sentence() -> None:
    assert answer_text(["LoRA trains two small matrices.", "The base stays frozen"], 3) == \
        "LoRA trains two small matrices [3]. The base stays frozen [3]"


DOCS = {
    "lora": ("LoRA", [("How LoRA works", "LoRA freezes the pretrained weights of a model. It learns two small low-rank matrices per layer. "
                                         "Only those matrices receive gradients during training."),
                      ("Why LoRA is efficient", "A rank-8 update has far fewer parameters than a full update. Memory for optimizer "
                                                "state shrinks by the same factor. Training fits on a single consumer GPU.")]),
    "faiss": ("FAISS", [("Index types", "FAISS is a library for nearest neighbour search over dense vectors. A flat index compares "
                                        "the query with every vector. HNSW builds a graph that is searched greedily.")]),
    "bm25": ("BM25", [("How BM25 scores documents", "BM25 is a ranking function that scores documents by query term matches. "
                                                    "Rare terms count more than common terms. Long documents are normalized by length.")]),
    "risotto": ("Risotto", [("Cooking the rice", "Risotto is a rice dish cooked slowly in stock. The rice is toasted first in butter. "
                                                 "Warm stock is added one ladle at a time.")]),
    "sourdough": ("Sourdough", [("Starter care", "A starter is a culture of wild yeast and bacteria. It is fed flour and water every day. "
                                                 "A lively starter doubles within a few hours.")]),
}


def chunks() -> list[Chunk]:
    out, cid = [], 0
    for doc, (title, sections) in DOCS.items():
        for ordinal, (heading, text) in enumerate(sections):
            out.append(Chunk(doc, ordinal, text, title, (title, heading), 0, len(text), source=f"/{doc}.md", chunk_id=cid))
            cid += 1
    return out


class WordOverlapSearcher:
    """A real (if simple) lexical searcher: chunks ranked by shared words with the query."""

    def __init__(self, items: list[Chunk]) -> None:
        self.items = items

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        words = set(normalize(query).split())
        scored = sorted(self.items, key=lambda c: -len(words & set(normalize(c.text + " " + c.heading).split())))
        return [Hit(c, 1.0, i) for i, c in enumerate(scored[: k or 4])]


def test_conversations_are_grounded_and_citations_point_at_the_supporting_passage() -> None:
    items = chunks()
    result = synthesize(items, WordOverlapSearcher(items), SynthOptions(n=50, passages=3, unanswerable=0.3, multi_turn=0.3,
                                                                        val_fraction=0.0, seed=1))
    rows = result.train
    assert rows and not result.val
    by_text = {c.text: c for c in items}
    kinds = set()
    for row in rows:
        kinds.add(row["kind"])
        msgs = row["messages"]
        assert msgs[0]["role"] == "system"
        for user, assistant in zip(msgs[1::2], msgs[2::2], strict=True):
            question, blocks = parse_user_message(user["content"])
            assert question and len(blocks) >= 2
            if row["kind"] == "unanswerable":
                assert assistant["content"] == ABSTAIN_TEXT
                assert all(row["source_doc"] not in b for b in blocks)
                continue
            cited = {int(n) for n in re.findall(r"\[(\d)\]", assistant["content"])}
            assert len(cited) == 1
            passage_text = blocks[cited.pop() - 1].split("\n", 1)[1]
            assert passage_text in by_text
            for sentence in re.split(r" \[\d\]\.? ?", assistant["content"]):
                assert sentence.strip().rstrip(".") in passage_text
    assert {"heading", "unanswerable"} <= kinds
    questions = [normalize(m["content"].rsplit("Question:", 1)[1]) for r in rows for m in r["messages"] if m["role"] == "user"]
    assert len(questions) == len(set(questions))


def test_documents_never_straddle_train_and_validation() -> None:
    items = chunks()
    result = synthesize(items, WordOverlapSearcher(items), SynthOptions(n=50, passages=3, val_fraction=0.4, seed=3))
    assert result.train and result.val
    assert not {r["source_doc"] for r in result.train} & {r["source_doc"] for r in result.val}


def test_excluded_questions_are_dropped() -> None:
    items = chunks()
    result = synthesize(items, WordOverlapSearcher(items), SynthOptions(n=50, passages=3, val_fraction=0.0),
                        exclude={normalize("How does LoRA work?")})
    assert result.excluded == 1
    assert all("How does LoRA work?" not in m["content"] for r in result.train for m in r["messages"])


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for doc, (title, sections) in DOCS.items():
        body = "\n\n".join(f"## {h}\n\n{t}" for h, t in sections)
        (folder / f"{doc}.md").write_text(f"# {title}\n\n{body}\n")
    return folder


def test_cli_writes_files_that_train_validate_accepts(notes: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    assert run_cli("index", "add", str(notes), "--collection", "notes").returncode == 0
    out = tmp_path / "synth.jsonl"
    r = run_cli("data", "synth", "--collection", "notes", "--out", str(out), "--n", "20", "--val-fraction", "0.2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["train_rows"] == len(read_jsonl(out)) > 0
    assert summary["val_rows"] == len(read_jsonl(tmp_path / "synth.val.jsonl")) > 0
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "train", "validate", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["formats"]) == {"rag"}

    before = out.read_bytes()
    r = run_cli("data", "synth", "--collection", "notes", "--out", str(out))
    assert r.returncode == 1 and "already exists" in r.stderr and "--force" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--collection", "nope"], "error: collection 'nope' does not exist"),
    (["--collection", "notes", "--exclude", "missing.jsonl"], "error: --exclude file not found"),
    (["--collection", "notes", "--n", "0"], "error: --n must be >= 1"),
])
def test_cli_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    r = run_cli("data", "synth", *args, "--out", str(tmp_path / "s.jsonl"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")][0].startswith(message), r.stderr
    assert not (tmp_path / "s.jsonl").exists()
