"""Training data: format detection, line-numbered errors, one-line refusals, nothing silently dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatkit.errors import DataError, InputError
from chatkit.prompting import SYSTEM_PROMPT, Passage, PromptTurn, build_messages
from chatkit.training.rows import load_clean, load_file
from tests.conftest import run_cli

GOOD = {"messages": [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Low-rank adapters."}]}
RAG = {"messages": build_messages([PromptTurn("What is LoRA?", (Passage("LoRA", "", "LoRA learns low-rank matrices."),), "Low-rank matrices [1].")])}
SHAREGPT = {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}
ALPACA = {"instruction": "Define LoRA.", "input": "", "output": "Low-rank adaptation."}

BAD_LINES = [
    ('{"messages": [', "bad JSON"),
    (json.dumps({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}), "unknown role 'bot'"),
    (json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}), "content is empty"),
    (json.dumps({"messages": [{"role": "assistant", "content": "y"}, {"role": "user", "content": "x"}]}), "bad turn order"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "no assistant turn"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}), "bad turn order"),
    (json.dumps({"prompt": "x", "completion": "y"}), "unknown row format"),
    (json.dumps({"messages": [{"role": "user", "content": "Passages:\n[1] T\nx"}, {"role": "assistant", "content": "y"}]}), "Question"),
    (json.dumps([1, 2]), "must be a JSON object"),
]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_formats_are_detected_and_normalised(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in (GOOD, RAG, SHAREGPT, ALPACA)])
    loaded = load_file(f)
    assert not loaded.errors
    assert [r.fmt for r in loaded.rows] == ["openai", "rag", "sharegpt", "alpaca"]
    assert loaded.rows[2].messages == (("user", "Hi?"), ("assistant", "Hello."))
    assert loaded.rows[3].messages == (("user", "Define LoRA."), ("assistant", "Low-rank adaptation."))
    assert loaded.rows[1].messages[0] == ("system", SYSTEM_PROMPT)


def test_rag_rows_without_system_get_the_engine_prompt(tmp_path: Path) -> None:
    row = {"messages": RAG["messages"][1:]}
    loaded = load_file(write_jsonl(tmp_path / "d.jsonl", [json.dumps(row)]))
    assert loaded.rows[0].messages[0] == ("system", SYSTEM_PROMPT)


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD)] + [text for text, _ in BAD_LINES] + ["", json.dumps(GOOD)]
    loaded = load_file(write_jsonl(tmp_path / "d.jsonl", lines))
    assert len(loaded.rows) == 2 and loaded.duplicates == [len(lines)]
    assert [n for n, _ in loaded.errors] == list(range(2, 2 + len(BAD_LINES)))
    for (line, message), (_, expected) in zip(loaded.errors, BAD_LINES, strict=True):
        assert expected in message, (line, message)
    with pytest.raises(DataError, match=r"line 2: bad JSON.* and 8 more"):
        load_clean(tmp_path / "d.jsonl")


def test_zero_usable_rows_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no usable rows .9 bad; first: line 1"):
        load_clean(write_jsonl(tmp_path / "bad.jsonl", [t for t, _ in BAD_LINES]))
    with pytest.raises(DataError, match="no usable rows .the file is empty"):
        load_clean(write_jsonl(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(InputError, match="not found"):
        load_clean(tmp_path / "nope.jsonl")


def test_non_utf8_line(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe{}\n")
    assert load_file(f).errors == [(2, "not UTF-8 text")]


def test_cli_validate_reports_lines_and_trained_tokens(tmp_path: Path, tiny_model_dir: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [json.dumps(RAG), BAD_LINES[1][0], json.dumps(SHAREGPT)])
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "train", "validate", str(f))
    assert r.returncode == 1, r.stderr
    assert "3 rows" in r.stdout and "2 usable" in r.stdout and "line 2" in r.stdout and "unknown role 'bot'" in r.stdout
    assert "trained tokens:" in r.stdout and "'<|im_end|>'" in r.stdout and "Question: What is LoRA?" in r.stdout
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "train", "validate", str(f), "--json")
    report = json.loads(r.stdout)
    assert report["errors"] == [{"line": 2, "error": "message 0: unknown role 'bot' (use system, user or assistant)"}]
    assert report["formats"] == {"rag": 1, "sharegpt": 1} and 0 < report["trained_tokens"] < report["total_tokens"]
    good = write_jsonl(tmp_path / "good.jsonl", [json.dumps(GOOD)])
    assert run_cli("--set", f"models.dialogue={tiny_model_dir}", "train", "validate", str(good)).returncode == 0


def test_cli_zero_usable_rows_is_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [t for t, _ in BAD_LINES])
    for verb in (["train", "validate", str(f)], ["train", "sft", "--data", str(f)]):
        r = run_cli("--set", f"models.dialogue={tiny_model_dir}", *verb)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "no usable rows" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
