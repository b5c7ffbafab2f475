"""Issue 20, the command line at its edges: no verb prints a traceback, every printed error exits non-zero,
output paths are checked before the work, input files fail by line, and user text cannot drive the terminal."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatkit.cli import build_parser, main

BAD_TEXT = "What is \udcff LoRA?"  # what Python makes of `chatkit ask $'What is \xff LoRA?'` (surrogateescape)
ESCAPES = "Hi \x1b[2J\x1b]0;pwned\x07\x1b[31mred\x9b1m \u202egnp.exe\u202c\x07 end"


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    code = exit_.value.code
    return (code if isinstance(code, int) else 1), out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --- the top-level handler ------------------------------------------------------------------------

def test_an_unexpected_exception_in_a_verb_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import chatkit.cli.stats

    def bug(ctx: object, args: object) -> int:
        raise RuntimeError("index out of range\nsecond line of detail")

    monkeypatch.setattr(chatkit.cli.stats, "run", bug)
    code, _, err = run_main(["stats"], capsys)
    assert code == 1
    assert one_error_line(err) == "error: RuntimeError: index out of range (run with --debug for the traceback)"
    with pytest.raises(RuntimeError, match="index out of range"):
        main(["--debug", "stats"])


def test_every_verb_turns_an_unexpected_exception_into_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import chatkit.cli

    def bug(ctx: object, args: argparse.Namespace) -> int:
        raise KeyError(" ".join(args.words))

    def parser_with_bugs() -> argparse.ArgumentParser:
        parser = build_parser()
        for words, leaf in leaf_commands(parser):
            leaf.set_defaults(func=bug, words=words)
        return parser

    monkeypatch.setattr(chatkit.cli, "build_parser", parser_with_bugs)
    for words, parser in leaf_commands(build_parser()):
        code, _, err = run_main([*words, *filled_argv(parser, tmp_path, "What is LoRA?")], capsys)
        assert code == 1 and one_error_line(err).startswith(f"error: KeyError: '{' '.join(words)}' (run with --debug"), err


def leaf_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(words, parser)]
    return [leaf for name, sp in subs[0].choices.items() for leaf in leaf_commands(sp, (*words, name))]


def filled_argv(parser: argparse.ArgumentParser, tmp_path: Path, text: str = BAD_TEXT) -> list[str]:
    """The arguments a command requires, each given a plausible but wrong value."""
    def value(action: argparse.Action) -> str:
        if action.choices:
            return str(next(iter(action.choices)))
        if action.type not in (None, str):  # int, or a range-checked number type
            return "7"
        if action.dest in ("question", "query"):
            return text
        return str(tmp_path / "missing" / action.dest)

    argv: list[str] = []
    groups = [g for g in parser._mutually_exclusive_groups if g.required]
    for group in groups:
        argv += [group._group_actions[0].option_strings[0], value(group._group_actions[0])]
    grouped = {a for g in groups for a in g._group_actions}
    for action in parser._actions:
        if action in grouped or not action.required:
            continue
        if action.option_strings:
            argv += [action.option_strings[0], value(action)]
        else:
            argv += [value(action)] * (1 if action.nargs in (None, 1) else 1)
    return argv


# Long-running or interactive when their input is fine: the server, the chat app, doctor's checks, the whole eval suite.
RUNS_FOR_LONG = {("serve",), ("chat",), ("doctor",), ("eval", "all")}


def test_no_verb_prints_a_traceback_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command with wrong arguments (missing files, non-UTF-8 text), alone, with a binary config file and with
    a data dir that is a regular file: an error line and exit != 0, or success; never a traceback."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50)
    home_file = tmp_path / "home-is-a-file"
    home_file.write_text("not a folder")
    leaves = leaf_commands(build_parser())
    assert len(leaves) > 25  # every sub-verb, not just the verbs
    for words, parser in leaves:
        argv = [*words, *filled_argv(parser, tmp_path)]
        parser.parse_args(argv[len(words):])  # the filled arguments parse: what fails below is the verb, not argparse
        for bad in ([], ["--config", str(binary)], ["--home", str(home_file)]):
            if words in RUNS_FOR_LONG and "--config" not in bad:
                continue  # test_cli.py::test_doctor_fails_on_unwritable_home covers doctor's
            code, _, err = run_main([*bad, *argv], capsys)
            assert "Traceback" not in err and ("error:" not in err or code != 0), (argv, bad, err)
            if code != 0:
                assert err.strip().splitlines()[-1].startswith("error: "), (argv, bad, err)


# --- non-UTF-8 arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["ask", "search"])
def test_non_utf8_question_is_one_line_error(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([verb, BAD_TEXT], capsys)
    line = one_error_line(err)
    assert code == 1 and "not valid UTF-8" in line and out == ""


def test_non_utf8_argument_from_a_real_command_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "chatkit", b"search", b"What is \xff LoRA?"], capture_output=True, timeout=120)
    err = r.stderr.decode("utf-8")
    assert r.returncode == 1 and "not valid UTF-8" in one_error_line(err)


# --- output paths, checked before the work ------------------------------------------------------------

def bad_outputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    regular = tmp_path / "regular-file"
    regular.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {"a directory": (folder, "is a directory"), "under a file": (regular / "sub" / "out.x", "is a file, not a folder"),
            "unwritable": (Path("/proc/chatkit-test/out.x"), "cannot write in")}


OUTPUT_COMMANDS = {  # each would fail on something else (no conversations, collection, adapter, QA file) if checked later
    "conversations export --out": ["conversations", "export", "--out", "{}"],
    "stats --png": ["stats", "--png", "{}"],
    "data synth --out": ["data", "synth", "--collection", "nope", "--out", "{}.jsonl"],
    "adapters export --gguf": ["adapters", "export", "nope", "--gguf", "{}"],
    "eval answers --out": ["eval", "answers", "--qa", "missing.jsonl", "--out", "{}"],
}


@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_bad_output_path_is_refused_before_the_work(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for kind, (path, why) in bad_outputs(tmp_path).items():
        if kind == "a directory" and command in ("eval answers --out", "data synth --out"):
            continue  # a folder output may exist; a '.jsonl' name is not the folder
        argv = [w.replace("{}", str(path)) for w in OUTPUT_COMMANDS[command]]
        code, _, err = run_main(argv, capsys)
        line = one_error_line(err)
        assert code == 1 and str(path) in line and why in line, (command, kind, line)


def test_stats_png_says_the_file_it_really_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["stats", "--png", str(tmp_path / "usage")], capsys)
    assert code == 0 and f"wrote {tmp_path / 'usage.png'}" in err
    assert (tmp_path / "usage.png").read_bytes()[:4] == b"\x89PNG"


# --- input files ----------------------------------------------------------------------------------------

GOOD_ROW = {"messages": [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Low-rank adapters."}]}
DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_training_row_is_reported_by_line(tmp_path: Path, tiny_model_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "deep.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n" + DEEP + "\n")
    model = ["--set", f"models.dialogue={tiny_model_dir}"]
    code, out, err = run_main([*model, "train", "validate", str(data)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "line 2" in out and "nested more than 64 levels deep" in out
    code, _, err = run_main([*model, "train", "sft", "--data", str(data), "--max-steps", "1"], capsys)
    assert code == 1 and f"{data}: line 2: nested more than 64 levels deep" in one_error_line(err)


def test_train_validate_on_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["train", "validate", str(tmp_path)], capsys)
    line = one_error_line(err)
    assert code == 1 and "is a directory" in line and "not found" not in line


QA_ROW = {"id": "q1", "question": "What is LoRA?", "answer": "Adapters.", "doc_ids": ["d"], "keywords": ["lora"], "answerable": True}
BAD_QA = {
    "wrong types": (json.dumps(QA_ROW) + "\n" + json.dumps(QA_ROW | {"doc_ids": "x", "keywords": 3}) + "\n").encode(),
    "binary": b"\x00\x01\x02\xff\xfe\x89PNG\r\n" * 40,
    "deep nesting": (json.dumps(QA_ROW | {"doc_ids": json.loads("[" * 500 + "]" * 500)}) + "\n").encode(),
}
EVAL_VERBS = {"answers": ["eval", "answers"], "retrieval": ["eval", "retrieval"], "compare": ["eval", "compare", "--adapter", "x"]}


@pytest.mark.parametrize("verb", list(EVAL_VERBS))
def test_bad_qa_files_are_data_errors_with_line_numbers(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = {"wrong types": "line 2: 'doc_ids' must be a list, not a string", "binary": "line 1: ",
                "deep nesting": "line 1: nested more than 64 levels deep"}
    for kind, content in BAD_QA.items():
        qa = tmp_path / f"{kind.replace(' ', '-')}.jsonl"
        qa.write_bytes(content)
        code, _, err = run_main([*EVAL_VERBS[verb], "--qa", str(qa)], capsys)
        line = one_error_line(err)
        assert code == 1 and f"{qa}: {expected[kind]}" in line, (kind, line)


# --- every printed error exits non-zero ----------------------------------------------------------------

@pytest.fixture(scope="module")
def notes_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chatkit.config import Paths, load_settings
    from chatkit.indexing import ensure_collection

    root = tmp_path_factory.mktemp("edges")
    folder = root / "notes"
    folder.mkdir()
    (folder / "lora.md").write_text("# LoRA \x1b[2J\u202eevil\n\n## How it works\n\n"
                                    "LoRA freezes the pre-trained weights and learns two small low-rank matrices.\n")
    home = root / "home"
    ensure_collection(load_settings(), Paths(home).ensure(), "notes", folder)
    return home


def test_generation_failure_exits_non_zero(notes_home: Path, tiny_model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The tiny model with a 64-position context: the system prompt and question alone do not fit, so generating fails."""
    import shutil

    short = shutil.copytree(tiny_model_dir, tmp_path / "short-context")
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 64}))
    argv = ["--home", str(notes_home), "--set", f"models.dialogue={short}", "--set", "models.dtype=float32",
            "--set", "generation.backend=hf", "--set", "generation.max_new_tokens=8",
            "ask", "Why does LoRA freeze the pre-trained weights and learn low-rank matrices?", "--collection", "notes",
            "--style", "generative"]
    code, _, err = run_main(argv, capsys)
    assert "error: generation failed" in err and code == 1, err
    code, out, _ = run_main([*argv, "--json"], capsys)
    assert code == 1 and json.loads(out)["error"].startswith("generation failed")


# --- misleading messages ---------------------------------------------------------------------------------

def test_index_refuses_an_empty_collection_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    code, _, err = run_main(["index", "add", str(tmp_path), "-c", ""], capsys)
    assert code == 1 and "--collection must not be empty" in one_error_line(err)
    code, _, err = run_main(["index", "add", str(tmp_path), "-c", "../up"], capsys)
    assert code == 1 and "invalid collection name" in one_error_line(err)


def test_index_glob_invalid_or_matching_nothing_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    code, _, err = run_main(["index", "add", str(tmp_path), "--glob", "["], capsys)
    assert code == 1 and "is not a valid pattern" in one_error_line(err)
    code, _, err = run_main(["index", "add", str(tmp_path), "--glob", "*.rst"], capsys)
    assert code == 1 and "matches --glob '*.rst'" in one_error_line(err)
    code, _, err = run_main(["index", "status", str(tmp_path), "--glob", "*.rst"], capsys)
    assert code == 1 and "matches --glob" in one_error_line(err)


def test_index_status_of_an_unknown_collection_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    code, out, err = run_main(["index", "status", str(tmp_path), "-c", "nosuch"], capsys)
    assert code == 1 and "collection 'nosuch' does not exist" in one_error_line(err) and out == ""


# --- terminal escape injection ---------------------------------------------------------------------------

def test_printable_strips_escapes_controls_and_bidi() -> None:
    from chatkit.terminal_text import printable

    assert printable(ESCAPES) == "Hi red1m gnp.exe end"
    assert printable("a\tb\nc\rd") == "a\tb\ncd" and printable("a\tb\nc", one_line=True) == "a b c"
    assert printable(BAD_TEXT) == "What is \ufffd LoRA?"


def controls_in(text: str) -> list[str]:
    return sorted({c for c in text if (ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) <= 0x9F or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"})


def test_conversation_titles_and_turns_print_without_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from chatkit.config import Paths, default_home
    from chatkit.conversations import ConversationStore

    store = ConversationStore(Paths(default_home()).ensure().conversations_db)
    conv = store.new_conversation()
    store.finish_turn(store.start_turn(conv, ESCAPES + " [/] [bold]", []), "answer " + ESCAPES)
    store.close()
    for argv in (["conversations", "ls"], ["conversations", "show", str(conv)]):
        code, out, err = run_main(argv, capsys)
        assert code == 0 and "pwned" not in out and not controls_in(out), (argv, out)
        assert "gnp.exe" in out and "[/] [bold]" in out, out  # the text itself is kept, markup shown as text


def test_search_and_ask_print_titles_without_control_characters(notes_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["search", "LoRA low-rank"], ["ask", "What does LoRA freeze?", "--style", "extractive"]):
        code, out, err = run_main(["--home", str(notes_home), *argv, "--collection", "notes"], capsys)
        assert code == 0, err
        assert "LoRA" in out and "evil" in out and not controls_in(out), (argv, out)


# --- found by the longer fuzz run ------------------------------------------------------------------------


def test_a_usage_mistake_is_one_line_not_the_usage_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["--home", str(tmp_path), "--set", "-=0", "config", "show"], capsys)
    assert code == 2 and "--set" in one_error_line(err) and "--help" in err
    code, _, err = run_main(["ask", "-k", "-1", "hi"], capsys)
    assert code == 2 and "argument -k" in one_error_line(err)


def test_an_error_quoting_a_newline_stays_one_line(tmp_path: Path, tiny_model_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "train.jsonl"
    rows.write_text(json.dumps({"\n": 1}) + "\n")
    code, _, err = run_main(["--home", str(tmp_path), "--set", f"models.dialogue={tiny_model_dir}",
                             "train", "validate", str(rows)], capsys)
    assert code == 1 and "unknown row format" in one_error_line(err)
