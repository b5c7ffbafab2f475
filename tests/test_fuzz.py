"""Hypothesis fuzzing of every input chatkit reads: configs and --set values, JSONL training rows, QA
rows, BEIR folders, documents (binary, huge lines, invalid UTF-8, deep nesting) and HTTP bodies.

The contract for each: the command succeeds, or fails with exit code != 0 and exactly one line on
stderr (`error: ...`); never a traceback; the server never answers 5xx; and every SQLite file in the
data dir passes `PRAGMA integrity_check` afterwards. The CLI runs in-process (`chatkit.cli.main`),
which is what makes many examples affordable. Examples are derandomized (the same inputs every run)
and few; the `slow` run takes CHATKIT_FUZZ_EXAMPLES (default 200) per input kind."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatkit.cli import main
from chatkit.config import Settings
from scripts.kill_harness import integrity_failures
from tests.test_engine import DOCS
from tests.test_server import engine, kb_home, make_app, notes_home  # noqa: F401 - the server's fixtures, shared

# The `slow` runs (CI included): 40 examples each keeps CI in budget; CHATKIT_FUZZ_EXAMPLES=1000 for a long hunt.
SLOW_EXAMPLES = int(os.environ.get("CHATKIT_FUZZ_EXAMPLES", "40"))


def fuzz(examples: int) -> Any:
    """Seeded and bounded: the same examples every run; a deadline only catches a hang."""
    return settings(max_examples=examples, deadline=120_000, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# --- running the CLI in-process -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Outcome(tuple(argv), code, out, err)


def check_outcome(r: Outcome, home: Path, *, per_file: bool = False) -> None:
    """Success, or one line `error: ...` with a non-zero exit; no traceback; sound databases.

    `per_file`: `index add` goes on past a file it cannot read and ends with a summary naming each
    failed file, one line each, exit 1: a report, not one error."""
    shown = f"argv={list(r.argv)!r:.600}\nexit {r.code}\nstderr: {r.err[-1500:]}"
    assert "Traceback" not in r.err and "run with --debug" not in r.err, shown
    if per_file and r.code == 1 and "failed:" in r.err:
        assert all(len(line.split("failed: ")) == 2 for line in r.err.splitlines() if "failed:" in line), shown
    elif r.code != 0:
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
        assert "run with --debug" not in lines[0], f"an unexpected exception, not a ChatkitError:\n{shown}"
    assert not integrity_failures(home), integrity_failures(home)


@pytest.fixture(scope="module", autouse=True)
def _no_progress_bars() -> None:
    """In a fresh process chatkit silences transformers before importing it (cli.quiet_libraries); here
    the other tests imported it first, so its weight-loading bars would land on the captured stderr."""
    from transformers.utils import logging

    logging.disable_progress_bar()


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir of its own (the documents test adds to it) with one small collection, 'notes'."""
    return notes_home(tmp_path_factory.mktemp("fuzz-kb"), DOCS)


# --- building blocks ------------------------------------------------------------------------------

# Text a careless or hostile user may type or a broken file may hold: control and escape characters,
# right-to-left overrides, lone surrogates (what Python makes of undecodable argv bytes), NULs.
NASTY = st.sampled_from(["", " ", "\x00", "\x1b[31m", "\u202e", "\ud800", "\udcff", "\n", "\t", "é", "𝔘", "\ufeff"])
TEXT = st.one_of(st.text(max_size=40), st.lists(NASTY, max_size=4).map("".join), st.text(alphabet=st.characters(), max_size=20))
NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)


def deep(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


def config_keys() -> list[str]:
    keys = []
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(getattr(Settings(), section.name)):
            keys.append(f"{section.name}.{f.name}")
    return keys


KEYS = config_keys()
SET_VALUES = st.one_of(
    NUMBERS.map(str), TEXT, st.sampled_from(["0", "-1", "1e309", "nan", "inf", "-inf", "true", "null", "[1, 2]", "{a: 1}",
                                             "0x10", "1_000", "", "~", "'", "\"", "!!python/object:os.system", "&a", "*a"]),
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8", "surrogatepass"))  # lone surrogates become invalid UTF-8
    return path


def line_of(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except ValueError:  # nan is fine for json.dumps; this is for the odd unencodable value
        return repr(value)


BINARY = st.binary(min_size=1, max_size=600)
INVALID_UTF8 = st.binary(max_size=80).map(lambda b: b"\xff\xfe" + b + b"\xc3\x28\xa0\xa1")
DEEP_JSON = st.sampled_from([64, 1_000, 5_000, 100_000]).map(deep)  # 100,000 deep: issue 20's RecursionError


def jsonl(rows: st.SearchStrategy[Any]) -> st.SearchStrategy[str | bytes]:
    """A JSONL file: rows as JSON lines, or raw junk lines among them, or a wholly binary file."""
    line = st.one_of(rows.map(line_of), JSON_VALUES.map(line_of), DEEP_JSON, st.just(""), st.just("{"), TEXT)
    text = st.lists(line, min_size=0, max_size=6).map(lambda ls: "\n".join(ls) + "\n")
    return st.one_of(text, text, BINARY, INVALID_UTF8)


# --- configs and --set values ---------------------------------------------------------------------


SET_PAIRS = st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), TEXT), SET_VALUES), min_size=1, max_size=3)


@fuzz(60)
@given(pairs=SET_PAIRS)
def test_set_values(pairs: list[tuple[str, str]], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    argv = ["--home", str(home)]
    for key, value in pairs:
        argv += ["--set", f"{key}={value}"]
    check_outcome(cli(capsys, *argv, "config", "show"), home)


CONFIG_FILES = st.one_of(
    st.dictionaries(st.sampled_from([k.split(".")[0] for k in KEYS] + ["nope"]),
                    st.dictionaries(st.sampled_from([k.split(".")[1] for k in KEYS]), JSON_VALUES, max_size=3), max_size=3)
    .map(lambda d: json.dumps(d, ensure_ascii=False)),  # JSON is YAML
    JSON_VALUES.map(line_of), TEXT, BINARY, INVALID_UTF8, st.sampled_from([64, 1_000, 5_000]).map(deep),
    st.sampled_from(["a: &x [*x]", "!!python/object/apply:os.system ['true']", "a: 1\na: 2", "\t- x", "---\n---\n"]),
)


@fuzz(60)
@given(content=CONFIG_FILES)
def test_config_files(content: str | bytes, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = write(tmp_path / "c.yaml", content)
    check_outcome(cli(capsys, "--home", str(home), "--config", str(config), "config", "show"), home)


# The keys the search path reads: a value the ranges let through must not break a search.
RETRIEVAL_KEYS = [k for k in KEYS if k.split(".")[0] in ("retrieval", "engine")]


@fuzz(8)
@given(pairs=st.lists(st.tuples(st.sampled_from(RETRIEVAL_KEYS), st.one_of(NUMBERS.map(str), st.sampled_from(["0", "-1", "2"]))),
                      min_size=1, max_size=2),
       query=TEXT)
@example(pairs=[("retrieval.batch_size", "0")], query="LoRA")  # issue 20: a ValueError from range()
@example(pairs=[("retrieval.candidates", "0"), ("retrieval.dense_weight", "-1")], query="LoRA")
@example(pairs=[("retrieval.k", "-1"), ("retrieval.hnsw_ef_search", "0")], query="LoRA")
def test_set_values_reach_search(pairs: list[tuple[str, str]], query: str, capsys: pytest.CaptureFixture[str],
                                 fuzz_home: Path) -> None:
    argv = ["--home", str(fuzz_home)]
    for key, value in pairs:
        argv += ["--set", f"{key}={value}"]
    check_outcome(cli(capsys, *argv, "search", query or "LoRA", "--collection", "notes"), fuzz_home)


# --- training rows -------------------------------------------------------------------------------

ROLE = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", ""]), TEXT, NUMBERS)
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": st.one_of(TEXT, JSON_VALUES)})
TRAIN_ROW = st.one_of(
    st.fixed_dictionaries({"messages": st.one_of(st.lists(MESSAGE, max_size=4), JSON_VALUES)}),
    st.fixed_dictionaries({"conversations": st.lists(st.fixed_dictionaries({"from": ROLE, "value": SCALARS}), max_size=3)}),
    st.fixed_dictionaries({"prompt": SCALARS, "completion": SCALARS}),
)


@fuzz(25)
@given(content=jsonl(TRAIN_ROW))
@example(content=deep(100_000) + "\n")  # issue 20: a RecursionError
def test_training_rows(content: str | bytes, capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "home"
    data = write(tmp_path / "train.jsonl", content)
    check_outcome(cli(capsys, "--home", str(home), "--set", f"models.dialogue={tiny_model_dir}", "train", "validate", str(data)), home)


# --- QA rows (the three eval verbs that read them) --------------------------------------------------

QA_ROW = st.fixed_dictionaries(
    {"id": SCALARS, "question": st.one_of(TEXT, JSON_VALUES)},
    optional={"answer": SCALARS, "doc_ids": st.one_of(st.lists(TEXT, max_size=3), SCALARS),
              "keywords": st.one_of(st.lists(TEXT, max_size=3), SCALARS), "answerable": SCALARS},
)
QA_VERBS = st.sampled_from([("eval", "retrieval", "--json"), ("eval", "calibrate", "--json"),
                            ("eval", "answers", "--style", "extractive", "--no-perplexity", "--json")])


@fuzz(6)
@given(content=jsonl(QA_ROW), verb=QA_VERBS)
@example(content='{"id": "q1", "question": "What is LoRA?", "answer": "a", "doc_ids": "x", "keywords": 3}\n',
         verb=("eval", "answers", "--style", "extractive", "--no-perplexity", "--json"))  # issue 20: wrong types
def test_qa_rows(content: str | bytes, verb: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                 fuzz_home: Path) -> None:
    qa = write(tmp_path / "qa.jsonl", content)
    out = ["--out", str(tmp_path / "report")] if verb[1] == "answers" else []
    check_outcome(cli(capsys, "--home", str(fuzz_home), *verb, "--qa", str(qa), "--collection", "notes", *out), fuzz_home)


# --- BEIR folders -----------------------------------------------------------------------------------

CORPUS_ROW = st.fixed_dictionaries({"_id": SCALARS, "text": st.one_of(TEXT, SCALARS)}, optional={"title": SCALARS})
QUERY_ROW = st.fixed_dictionaries({"_id": SCALARS, "text": st.one_of(TEXT, SCALARS)})
QRELS = st.one_of(
    st.lists(st.tuples(TEXT, TEXT, st.one_of(NUMBERS.map(str), TEXT)), max_size=4)
    .map(lambda rows: "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows)),
    TEXT, BINARY, INVALID_UTF8,
)


@fuzz(5)
@given(corpus=jsonl(CORPUS_ROW), queries=jsonl(QUERY_ROW), qrels=QRELS,
       missing=st.sampled_from(["", "corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]))
def test_beir_folders(corpus: str | bytes, queries: str | bytes, qrels: str | bytes, missing: str,
                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    beir = tmp_path / "beir"
    for name, content in (("corpus.jsonl", corpus), ("queries.jsonl", queries), ("qrels/test.tsv", qrels)):
        target = beir / name
        if target.exists():
            target.unlink()
        if name != missing:
            write(target, content)
    check_outcome(cli(capsys, "--home", str(home), "eval", "retrieval", "--beir", str(beir), "--json"), home)


# --- documents ---------------------------------------------------------------------------------------

EXTENSIONS = st.sampled_from([".md", ".txt", ".html", ".rst", ".jsonl", ".pdf", ".htm", ".markdown"])
DOCUMENT = st.one_of(
    BINARY, INVALID_UTF8, TEXT,
    st.integers(1_000, 300_000).map(lambda n: "x" * n),  # one huge word
    st.integers(1_000, 50_000).map(lambda n: ("word " * n).strip()),  # one huge line
    st.integers(100, 20_000).map(lambda n: deep(n, "<div>", "</div>")),
    st.integers(100, 20_000).map(lambda n: "> " * n + "quote"),
    st.integers(100, 20_000).map(lambda n: deep(n)),
    st.integers(100, 5_000).map(lambda n: "".join(f"{'  ' * i}- item\n" for i in range(n))),
    st.just("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF"),
)


@fuzz(6)
@given(content=DOCUMENT, ext=EXTENSIONS)
def test_documents(content: str | bytes, ext: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, fuzz_home: Path) -> None:
    doc = write(tmp_path / "docs" / f"doc{ext}", content)
    r = cli(capsys, "--home", str(fuzz_home), "--set", "retrieval.chunk_tokens=64", "index", "add", str(doc), "-c", "fz")
    check_outcome(r, fuzz_home, per_file=True)
    check_outcome(cli(capsys, "--home", str(fuzz_home), "search", "LoRA weights"), fuzz_home)


# --- HTTP bodies ---------------------------------------------------------------------------------------

CHAT_BODY = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.one_of(st.lists(st.fixed_dictionaries({"role": ROLE, "content": st.one_of(TEXT, JSON_VALUES)}),
                                        min_size=0, max_size=3), JSON_VALUES)},
        optional={"model": st.one_of(st.sampled_from(["chatkit", "base"]), SCALARS), "max_tokens": NUMBERS,
                  "temperature": NUMBERS, "top_p": NUMBERS, "stream": SCALARS, "stop": st.one_of(TEXT, st.lists(TEXT, max_size=3), SCALARS),
                  "n": NUMBERS, "seed": NUMBERS, "conversation_id": SCALARS, "rag": SCALARS, "collections": JSON_VALUES,
                  "presence_penalty": NUMBERS, "logprobs": SCALARS, "response_format": JSON_VALUES, "tools": JSON_VALUES}),
    JSON_VALUES,
)
EMBED_BODY = st.one_of(st.fixed_dictionaries({"input": st.one_of(TEXT, st.lists(TEXT, max_size=4), JSON_VALUES)},
                                             optional={"model": SCALARS, "encoding_format": SCALARS}), JSON_VALUES)
FEEDBACK_BODY = st.one_of(st.fixed_dictionaries({"conversation_id": SCALARS, "turn": SCALARS, "rating": SCALARS},
                                                optional={"comment": TEXT}), JSON_VALUES)
REQUEST = st.one_of(
    st.tuples(st.just("/v1/chat/completions"), CHAT_BODY.map(line_of)),
    st.tuples(st.just("/v1/embeddings"), EMBED_BODY.map(line_of)),
    st.tuples(st.just("/v1/feedback"), FEEDBACK_BODY.map(line_of)),
    st.tuples(st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/feedback"]),
              st.one_of(BINARY, INVALID_UTF8, DEEP_JSON, st.just(""))),
)


@pytest.fixture(scope="module")
def client(engine: Any, kb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:  # noqa: F811
    from fastapi.testclient import TestClient

    saved = engine.settings.generation.context_tokens
    engine.settings.generation.context_tokens = 256  # short answers keep fuzzed generations fast
    db = tmp_path_factory.mktemp("fuzz-server") / "c.sqlite"
    app, store = make_app(engine, kb_home, db)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, db.parent
    store.close()
    engine.settings.generation.context_tokens = saved


@fuzz(40)
@given(request=REQUEST)
@example(request=("/v1/chat/completions", '{"messages":[{"role":"user","content":"What is \\ud800 LoRA?"}]}'))  # issue 20: a 500
@example(request=("/v1/chat/completions", '{"messages":[{"role":"user","content":"What is \ud800 LoRA?"}]}'))
def test_http_bodies(request: tuple[str, str | bytes], client: tuple[Any, Path]) -> None:
    http, folder = client
    path, body = request
    content = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    r = http.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code < 500, f"POST {path} {content[:400]!r} -> {r.status_code}: {r.text[:400]}"
    assert not integrity_failures(folder)


@fuzz(20)
@given(q=TEXT, k=st.one_of(NUMBERS.map(str), TEXT))
def test_http_search_queries(q: str, k: str, client: tuple[Any, Path]) -> None:
    http, _ = client
    r = http.get("/v1/search", params={"q": q.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), "k": k})
    assert r.status_code < 500, f"GET /v1/search q={q!r} k={k!r} -> {r.status_code}: {r.text[:400]}"


# --- the longer run ---------------------------------------------------------------------------------------
# The cheap kinds again with CHATKIT_FUZZ_EXAMPLES examples each (the embedder-bound kinds stay short).


@pytest.mark.slow
@fuzz(SLOW_EXAMPLES)
@given(pairs=SET_PAIRS)
def test_set_values_longer(pairs: list[tuple[str, str]], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    test_set_values.hypothesis.inner_test(pairs, capsys, tmp_path)


@pytest.mark.slow
@fuzz(SLOW_EXAMPLES)
@given(content=CONFIG_FILES)
def test_config_files_longer(content: str | bytes, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    test_config_files.hypothesis.inner_test(content, capsys, tmp_path)


@pytest.mark.slow
@fuzz(SLOW_EXAMPLES)
@given(content=jsonl(TRAIN_ROW))
def test_training_rows_longer(content: str | bytes, capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_model_dir: Path) -> None:
    test_training_rows.hypothesis.inner_test(content, capsys, tmp_path, tiny_model_dir)


@pytest.mark.slow
@fuzz(SLOW_EXAMPLES)
@given(request=REQUEST)
def test_http_bodies_longer(request: tuple[str, str | bytes], client: tuple[Any, Path]) -> None:
    test_http_bodies.hypothesis.inner_test(request, client)
