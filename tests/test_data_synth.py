"""`chatkit data synth`: question rules, grounded answers with valid citations, the document split, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from chatkit.corpus.sentences import split_sentences
from chatkit.prompting import ABSTAIN_TEXT, parse_user_message
from chatkit.training.synth import (
    SynthOptions,
    answer_text,
    definition_question,
    heading_question,
    normalize,
    synthesize,
)
from chatkit.training.synth_questions import casual_variants
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
    "papers": ("Resources: Key Papers", [("Papers on retrieval",
                                          "- **Sentence-BERT** (Reimers and Gurevych, 2019). Siamese BERT networks for sentence "
                                          "embeddings. Good for: semantic search with small encoders. - **Dense Passage Retrieval** "
                                          "(Karpukhin et al., 2020). Trained dual encoders for open-domain question answering.\n"
                                          "- **Billion-scale similarity search with GPUs** (Johnson, Douze and Jegou, 2017). "
                                          "The design of FAISS. Good for: why vector indexes scale to billions.")]),
}


def chunks() -> list[Chunk]:
    out, cid = [], 0
    for doc, (title, sections) in DOCS.items():
        for ordinal, (heading, text) in enumerate(sections):
            out.append(Chunk(doc, ordinal, text, title, (title, heading), 0, len(text), source=f"/{doc}.md", chunk_id=cid))
            cid += 1
    return out


class HashedWordsEmbedder:
    """A real (if simple) embedder: a hashed bag of words, normalized."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype="float32")
        for i, text in enumerate(texts):
            for word in normalize(text).split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class WordOverlapSearcher:
    """A real (if simple) lexical searcher: chunks ranked by shared words with the query."""

    def __init__(self, items: list[Chunk]) -> None:
        self.items = items
        self.embedder = HashedWordsEmbedder()

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        words = set(normalize(query).split())
        scored = sorted(self.items, key=lambda c: -len(words & set(normalize(c.text + " " + c.heading).split())))
        return [Hit(c, 1.0, i) for i, c in enumerate(scored[: k or 4])]


_CITED = re.compile(r"(.+?) \[(\d+)\]\.?(?: |$)")


def cited_sentences(answer: str) -> list[tuple[str, int]]:
    """(sentence without its final period, passage number) for each cited sentence of an answer."""
    assert _CITED.sub("", answer).strip() == "", answer  # no uncited text
    return [(m.group(1).strip(), int(m.group(2))) for m in _CITED.finditer(answer)]


def check_grounded(rows: list[dict], chunks_: list[Chunk], whole_passages: bool = False) -> None:
    """Every answer sentence is verbatim in the shown passage it cites (whole passages keep their markup and
    line breaks, which quoted sentences drop)."""
    texts = [c.text for c in chunks_]
    for row in rows:
        msgs = row["messages"]
        assert msgs[0]["role"] == "system"
        for user, assistant in zip(msgs[1::2], msgs[2::2], strict=True):
            question, blocks = parse_user_message(user["content"])
            assert question and len(blocks) >= 2
            shown = [b.split("\n", 1)[1] for b in blocks]
            if whole_passages:
                shown = [" ".join(t.replace("**", "").split()) for t in shown]
            if row["kind"] == "unanswerable":
                assert assistant["content"] == ABSTAIN_TEXT
                continue
            cited = cited_sentences(assistant["content"])
            assert cited
            for sentence, n in cited:
                assert 1 <= n <= len(shown) and sentence in shown[n - 1], (row["kind"], sentence, shown[n - 1])
                assert any(sentence in t.replace("**", "").replace("\n", " ") for t in texts)


def synth(n: int = 200, **kw: object) -> tuple[list[Chunk], list[dict]]:
    items = chunks()
    options = SynthOptions(**{"n": n, "passages": 3, "val_fraction": 0.0, "seed": 1, **kw})  # type: ignore[arg-type]
    return items, synthesize(items, WordOverlapSearcher(items), options).train


def test_conversations_are_grounded_and_citations_point_at_the_supporting_passage() -> None:
    items, rows = synth(unanswerable=0.3, multi_turn=0.3)
    check_grounded(rows, items)
    assert {"heading", "unanswerable"} <= {r["kind"] for r in rows}
    for refused in (True, False):  # a question may be asked once with its passages and once with others'
        questions = [normalize(m["content"].rsplit("Question:", 1)[1]) for r in rows for m in r["messages"]
                     if m["role"] == "user" and (r["kind"] == "unanswerable") is refused]
        assert len(questions) == len(set(questions))


@pytest.mark.parametrize("evidence", [0, 1, 3])
def test_answers_are_verbatim_in_the_cited_passage_as_shown(evidence: int) -> None:
    items, rows = synth(evidence_sentences=evidence, unanswerable=0.2, multi_turn=0.2)
    check_grounded(rows, items, whole_passages=evidence == 0)
    if evidence == 1:
        # Passages show few sentences: a distractor shows one, a supporting passage its answer's sentences.
        assert any(len(split_sentences(b.split("\n", 1)[1])) == 1 for r in rows
                   for b in parse_user_message(r["messages"][1]["content"])[1])


def test_every_kind_appears() -> None:
    _, rows = synth(n=400, unanswerable=0.15, multi_turn=0.6)
    assert {r["kind"] for r in rows} == {"definition", "heading", "variant", "multi-part", "comparison",
                                         "recommendation", "multi-turn", "unanswerable"}


def test_multi_part_answers_cite_each_part_in_the_order_asked() -> None:
    _, rows = synth(n=400)
    multi = [r for r in rows if r["kind"] in ("multi-part", "comparison")]
    assert multi
    for row in multi:
        numbers = [n for _, n in cited_sentences(row["messages"][2]["content"])]
        runs = [n for n, _ in itertools.groupby(numbers)]
        assert len(numbers) >= 2 and len(runs) <= 2 and len(set(runs)) == len(runs)  # part one's passage, then part two's
    assert any(len(set(n for _, n in cited_sentences(r["messages"][2]["content"]))) == 2 for r in multi)


def test_comparisons_answer_with_both_definitions() -> None:
    _, rows = synth(n=400)
    comparisons = [r for r in rows if r["kind"] == "comparison"]
    assert comparisons
    for row in comparisons:
        parts = [t for t, _ in cited_sentences(row["messages"][2]["content"])]
        assert len(parts) == 2 and all(definition_question(p + ".") for p in parts)


def test_recommendations_name_the_resource_first() -> None:
    _, rows = synth(n=400)
    recs = [r for r in rows if r["kind"] == "recommendation"]
    questions = {parse_user_message(r["messages"][1]["content"])[0]: r["messages"][2]["content"] for r in recs}
    assert questions["Which paper explains why vector indexes scale to billions?"].startswith(
        "Billion-scale similarity search with GPUs (Johnson, Douze and Jegou, 2017) [")
    assert questions["Which paper covers siamese BERT networks for sentence embeddings?"].startswith("Sentence-BERT (Reimers")


def test_casual_variants_are_deterministic_by_seed_and_differ_after_normalization() -> None:
    q = "What is BM25?"
    first = casual_variants(q, seed=7)
    assert first == casual_variants(q, seed=7)
    assert len(first) == 3 and len({normalize(v) for v in first} | {normalize(q)}) == 4
    assert any(casual_variants(q, seed=s) != first for s in range(8))
    assert all(v == v.lower() and not v.endswith(".") for v in first)


def test_how_do_i_comes_from_a_gerund_heading() -> None:
    variants = casual_variants("What should I know about indexing documents?", seed=0, vocabulary={"index"}, limit=10)
    assert any(normalize(v).startswith("how do i ind") for v in variants)


def test_rows_reach_n_when_candidates_suffice() -> None:
    items = chunks()
    result = synthesize(items, WordOverlapSearcher(items), SynthOptions(n=40, passages=3, val_fraction=0.0))
    assert result.candidates > 40 and len(result.train) == 40


def test_documents_never_straddle_train_and_validation() -> None:
    items = chunks()
    result = synthesize(items, WordOverlapSearcher(items), SynthOptions(n=50, passages=3, val_fraction=0.4, seed=3))
    assert result.train and result.val
    assert not {d for r in result.train for d in r["source_docs"]} & {d for r in result.val for d in r["source_docs"]}


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
])
def test_cli_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    r = run_cli("data", "synth", *args, "--out", str(tmp_path / "s.jsonl"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")][0].startswith(message), r.stderr
    assert not (tmp_path / "s.jsonl").exists()
