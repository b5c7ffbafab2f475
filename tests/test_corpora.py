"""The corpora: curriculum front matter, the gold conversations, the QA set, and guards against rot and copying."""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatkit.prompting import ABSTAIN_TEXT, SYSTEM_PROMPT, parse_user_message, says_abstain

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"
SHARED = ROOT.parent / "shared"
SEEDS = SHARED / "seeds"

STAGES = {
    "foundations", "deep-learning", "embeddings-sequence-models", "transformers", "pretrained-models",
    "fine-tuning", "evaluation", "retrieval", "deployment", "monitoring", "projects", "resources",
}
QA_FIELDS = {"id", "question", "answer", "doc_ids", "keywords", "answerable", "kind"}
QA_SPLITS = ("dev", "test")
ANSWERABLE_KINDS = {"direct", "casual", "multi-part", "recommendation", "comparison", "two-passage"}
UNANSWERABLE_KINDS = {"near-topic", "off-topic"}
_CITATION = re.compile(r"\[(\d{1,2})\]")
_WORD = re.compile(r"[a-z0-9']+")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip()) if s]


def _front_matter(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path.name}: no YAML front matter"
    head, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(head)
    assert isinstance(meta, dict), f"{path.name}: front matter is not a mapping"
    return meta, body


def _doc_path(doc_id: str) -> Path:
    return CORPORA / f"{doc_id}.md"


@functools.cache
def _doc_text(doc_id: str) -> str:
    return _norm(_doc_path(doc_id).read_text(encoding="utf-8"))


@functools.cache
def _titles() -> dict[str, str]:
    """Document title -> doc_id, for both knowledge corpora."""
    out = {}
    for folder in ("curriculum", "handbook"):
        for path in sorted((CORPORA / folder).glob("*.md")):
            meta, _ = _front_matter(path)
            out[str(meta["title"])] = f"{folder}/{path.stem}"
    return out


@functools.cache
def _conversations() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for split in ("train", "val"):
        path = CORPORA / "conversations" / f"{split}.jsonl"
        out[split] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def _all_conversations() -> list[dict[str, Any]]:
    return [c for rows in _conversations().values() for c in rows]


def _turns(conv: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """(question, passage blocks, answer) per user turn."""
    msgs = conv["messages"][1:]
    out = []
    for user, assistant in zip(msgs[0::2], msgs[1::2], strict=True):
        question, blocks = parse_user_message(user["content"])
        out.append((question, blocks, assistant["content"]))
    return out


def _block_title(block: str) -> str:
    header = block.split("\n", 1)[0]
    return re.sub(r"^\[\d{1,2}\] ", "", header).split(" > ", 1)[0]


@functools.cache
def _qa_split(split: str) -> list[dict[str, Any]]:
    path = CORPORA / "qa" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _qa() -> list[dict[str, Any]]:
    return [item for split in QA_SPLITS for item in _qa_split(split)]


# --- curriculum -------------------------------------------------------------------------------------


def test_curriculum_has_40_to_60_lessons_with_valid_front_matter() -> None:
    lessons = sorted((CORPORA / "curriculum").glob("*.md"))
    assert 40 <= len(lessons) <= 60
    stems = {p.stem for p in lessons}
    stages_seen = set()
    for path in lessons:
        meta, body = _front_matter(path)
        assert isinstance(meta.get("title"), str) and meta["title"].strip(), path.name
        assert meta.get("stage") in STAGES, f"{path.name}: stage {meta.get('stage')!r}"
        stages_seen.add(meta["stage"])
        assert isinstance(meta.get("topics"), list) and meta["topics"], f"{path.name}: topics"
        assert isinstance(meta.get("prerequisites"), list), f"{path.name}: prerequisites"
        for pre in meta["prerequisites"]:
            assert pre in stems and pre != path.stem, f"{path.name}: unknown prerequisite {pre!r}"
        assert isinstance(meta.get("seeds"), list) and meta["seeds"], f"{path.name}: seeds"
        assert len(body.split()) > 200, f"{path.name}: body too short"
    assert stages_seen == STAGES


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not present")
def test_curriculum_seeds_name_existing_seed_files() -> None:
    for path in sorted((CORPORA / "curriculum").glob("*.md")):
        meta, _ = _front_matter(path)
        for seed in meta["seeds"]:
            assert (SEEDS / seed).is_file(), f"{path.name}: seed {seed!r} not in {SEEDS}"


# --- gold conversations -----------------------------------------------------------------------------


def test_conversation_counts_and_ratios() -> None:
    convs = _all_conversations()
    splits = _conversations()
    assert len(convs) >= 96
    assert len(splits["val"]) >= 10 and len(splits["train"]) >= 4 * len(splits["val"])
    ids = [c["id"] for c in convs]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"conv-\d{3,}", i) for i in ids)
    multi = sum(1 for c in convs if len(_turns(c)) > 1)
    assert multi / len(convs) >= 0.22
    assert all(len(_turns(c)) <= 3 for c in convs)
    answers = [answer for c in convs for _, _, answer in _turns(c)]
    unanswerable = sum(1 for a in answers if a.startswith(ABSTAIN_TEXT))
    assert unanswerable / len(answers) >= 0.18


def _about_chatkit(conv: dict[str, Any]) -> bool:
    """Cited passages come from the handbook, or (for a pure abstention) the learner asked about chatkit."""
    cited_docs = set()
    for _, blocks, answer in _turns(conv):
        for n in {int(m) for m in _CITATION.findall(answer)}:
            cited_docs.add(_titles()[_block_title(blocks[n - 1])])
    if cited_docs:
        return any(d.startswith("handbook/") for d in cited_docs)
    return any("chatkit" in q.lower() for q, _, _ in _turns(conv))


def test_a_quarter_of_conversations_are_about_chatkit() -> None:
    convs = _all_conversations()
    assert sum(_about_chatkit(c) for c in convs) / len(convs) >= 0.25


def test_messages_are_system_then_alternating_user_assistant() -> None:
    for conv in _all_conversations():
        msgs = conv["messages"]
        assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}, conv["id"]
        rest = msgs[1:]
        assert rest and len(rest) % 2 == 0, conv["id"]
        for i, msg in enumerate(rest):
            assert set(msg) == {"role", "content"}, conv["id"]
            assert msg["role"] == ("user" if i % 2 == 0 else "assistant"), conv["id"]
            assert msg["content"].strip(), conv["id"]


def test_every_turn_carries_3_or_4_passages_and_a_question() -> None:
    for conv in _all_conversations():
        for question, blocks, _ in _turns(conv):
            assert question.strip(), conv["id"]
            assert 3 <= len(blocks) <= 4, f"{conv['id']}: {len(blocks)} passages"


def test_citations_point_at_passages_of_the_same_turn() -> None:
    for conv in _all_conversations():
        for _, blocks, answer in _turns(conv):
            for n in _CITATION.findall(answer):
                assert 1 <= int(n) <= len(blocks), f"{conv['id']}: [{n}] with {len(blocks)} passages"


def test_answers_are_short_cited_or_exact_abstentions() -> None:
    for conv in _all_conversations():
        for _, _, answer in _turns(conv):
            assert 1 <= len(_sentences(answer)) <= 4, f"{conv['id']}: {answer}"
            if answer.startswith(ABSTAIN_TEXT):
                assert len(_sentences(answer)) <= 2, f"{conv['id']}: abstention too long"
            else:
                assert _CITATION.search(answer), f"{conv['id']}: answer without citation: {answer}"
                assert not says_abstain(answer), f"{conv['id']}: reads as an abstention but lacks the exact text"


def test_passages_name_the_conversation_documents() -> None:
    for conv in _all_conversations():
        docs = set()
        for _, blocks, _ in _turns(conv):
            for block in blocks:
                title = _block_title(block)
                assert title in _titles(), f"{conv['id']}: passage title {title!r} is no corpus document"
                docs.add(_titles()[title])
        assert docs == set(conv["doc_ids"]), conv["id"]


def test_conversation_doc_ids_exist() -> None:
    for conv in _all_conversations():
        assert conv["doc_ids"], conv["id"]
        for doc_id in conv["doc_ids"]:
            assert _doc_path(doc_id).is_file(), f"{conv['id']}: {doc_id}"


# --- QA evaluation set ------------------------------------------------------------------------------


def test_qa_items_have_the_fields_and_a_valid_kind() -> None:
    ids = [q["id"] for q in _qa()]
    assert len(ids) == len(set(ids)), "QA ids repeat across dev.jsonl and test.jsonl"
    for item in _qa():
        assert set(item) == QA_FIELDS, item["id"]
        assert re.fullmatch(r"qa-(t-)?\d{3,}", item["id"]), item["id"]
        assert isinstance(item["answerable"], bool) and item["question"].strip(), item["id"]
        kinds = ANSWERABLE_KINDS if item["answerable"] else UNANSWERABLE_KINDS
        assert item["kind"] in kinds, f"{item['id']}: kind {item['kind']!r} with answerable={item['answerable']}"
        if not item["answerable"]:
            assert item["doc_ids"] == [] and item["keywords"] == [], item["id"]
            assert item["answer"] == ABSTAIN_TEXT, item["id"]


def test_qa_split_counts() -> None:
    """dev is for tuning, test for reporting: test must be big and varied enough to report on."""
    for split, min_answerable, min_unanswerable in (("dev", 40, 8), ("test", 200, 40)):
        items = _qa_split(split)
        answerable = [q for q in items if q["answerable"]]
        assert len(answerable) >= min_answerable, f"{split}: {len(answerable)} answerable"
        assert len(items) - len(answerable) >= min_unanswerable, f"{split}: {len(items) - len(answerable)} unanswerable"
        handbook = [q for q in answerable if any(d.startswith("handbook/") for d in q["doc_ids"])]
        assert len(handbook) / len(answerable) >= 0.30, f"{split}: too few handbook questions"
    test_kinds = [q["kind"] for q in _qa_split("test")]
    for kind in sorted(UNANSWERABLE_KINDS):
        assert test_kinds.count(kind) >= 10, f"test has {test_kinds.count(kind)} {kind} items"


def test_no_question_is_in_both_dev_and_test() -> None:
    dev = {_norm(q["question"]) for q in _qa_split("dev")}
    shared = [q["id"] for q in _qa_split("test") if _norm(q["question"]) in dev]
    assert not shared, f"in both dev.jsonl and test.jsonl: {shared}"


def test_qa_answers_and_keywords_come_from_existing_gold_documents() -> None:
    for item in _qa():
        if not item["answerable"]:
            continue
        assert item["doc_ids"], item["id"]
        for doc_id in item["doc_ids"]:
            assert _doc_path(doc_id).is_file(), f"{item['id']}: {doc_id}"
        assert 1 <= len(_sentences(item["answer"])) <= 3, f"{item['id']}: {item['answer']}"
        assert 2 <= len(item["keywords"]) <= 4, item["id"]
        gold = " ".join(_doc_text(d) for d in item["doc_ids"])
        for kw in item["keywords"]:
            assert _norm(kw) in gold, f"{item['id']}: keyword {kw!r} not in {item['doc_ids']}"
            assert _norm(kw) in _norm(item["answer"]), f"{item['id']}: keyword {kw!r} not in the answer"


def test_no_qa_question_or_answer_shares_an_8_word_span_with_the_corpora() -> None:
    """Written in the learners' and the authors' own words, so matching text cannot pass for understanding."""
    corpus_spans: set[tuple[str, ...]] = set()
    for path, text in _corpus_texts():
        if path.parent.name != "qa":
            corpus_spans |= _spans(text, 8)
    for item in _qa():
        for field in ("question", "answer"):
            shared = _spans(item[field], 8) & corpus_spans
            assert not shared, f"{item['id']} {field} shares {' '.join(next(iter(shared)))!r} with corpora/"


def _conversation_questions() -> list[str]:
    return [q for c in _all_conversations() for q, _, _ in _turns(c)]


def _spans(text: str, n: int) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def test_no_qa_question_shares_an_8_word_span_with_a_conversation_question() -> None:
    conv_spans = set().union(*(_spans(q, 8) for q in _conversation_questions()))
    for item in _qa():
        shared = _spans(item["question"], 8) & conv_spans
        assert not shared, f"{item['id']}: shares {' '.join(next(iter(shared)))!r}"


def test_no_qa_question_is_an_embedding_near_duplicate_of_a_conversation_question() -> None:
    from chatkit.models import packaged_embedder_path
    from chatkit.retrieval.embedder import Embedder

    embedder = Embedder(str(packaged_embedder_path()), "minilm")
    conv_questions = _conversation_questions()
    qa_questions = [item["question"] for item in _qa()]
    sims = embedder.encode(qa_questions) @ embedder.encode(conv_questions).T
    worst = sims.max(axis=1)
    i = int(worst.argmax())
    nearest = conv_questions[int(sims[i].argmax())]
    assert worst[i] < 0.9, f"{qa_questions[i]!r} ~ {nearest!r} ({worst[i]:.3f})"


# --- guards against copying and rot -----------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _corpus_texts() -> list[tuple[Path, str]]:
    out = []
    for path in sorted(CORPORA.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            text = "\n".join(s for line in text.splitlines() if line.strip() for s in _strings(json.loads(line)))
        out.append((path, text))
    return out


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not present")
def test_no_12_word_span_of_a_seed_appears_in_the_corpora() -> None:
    seed_spans: set[tuple[str, ...]] = set()
    for seed in sorted(SEEDS.iterdir()):
        if seed.is_file():
            seed_spans |= _spans(seed.read_text(encoding="utf-8", errors="replace"), 12)
    assert seed_spans
    for path, text in _corpus_texts():
        copied = _spans(text, 12) & seed_spans
        assert not copied, f"{path.relative_to(ROOT)} copies {' '.join(next(iter(copied)))!r}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_cli_verb_subverb_and_config_key_is_in_the_handbook() -> None:
    from chatkit.cli import build_parser
    from chatkit.config import all_keys

    handbook = _norm("\n".join(p.read_text(encoding="utf-8") for p in sorted((CORPORA / "handbook").glob("*.md"))))
    missing = []
    for verb, verb_parser in _subparsers(build_parser()).items():
        if f"chatkit {verb}" not in handbook:
            missing.append(f"chatkit {verb}")
        for sub in _subparsers(verb_parser):
            if f"chatkit {verb} {sub}" not in handbook:
                missing.append(f"chatkit {verb} {sub}")
    missing += [key for key in all_keys() if key.lower() not in handbook]
    assert not missing, f"not in corpora/handbook: {missing}"


def _as_written(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(str(v).replace("\n", "\\n") for v in value) + "]"
    return str(value) if value != "" else "''"


def test_the_config_key_reference_states_every_current_default() -> None:
    """A default changed in config.py must change in the handbook table the assistant answers from."""
    from chatkit.config import all_keys

    table = (CORPORA / "handbook" / "04-config-key-reference.md").read_text(encoding="utf-8")
    stated = dict(re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| `([^`]*)` \|", table, re.MULTILINE))
    wrong = {key: (stated.get(key), _as_written(default)) for key, (default, _help) in all_keys().items()
             if stated.get(key) != _as_written(default)}
    assert not wrong, f"handbook default vs config default: {wrong}"
