from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatkit.cli import build_parser
from tests.conftest import run_cli

VERBS = ("index", "search", "ask", "chat", "conversations", "data", "train", "adapters", "eval", "serve", "stats",
         "doctor", "config")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers registered under `parser`, by name: what argparse actually dispatches on."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_verb_is_registered_in_stage_order() -> None:
    assert tuple(subcommands(build_parser())) == VERBS


def every_command() -> list[tuple[str, ...]]:
    """Each verb, and each of its sub-verbs, as the words a user types."""
    commands: list[tuple[str, ...]] = []
    for verb, parser in subcommands(build_parser()).items():
        commands.append((verb,))
        commands += [(verb, sub) for sub in subcommands(parser)]
    return commands


@pytest.mark.parametrize("words", every_command(), ids=" ".join)
def test_each_verb_help_exits_0(words: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*words, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: chatkit {' '.join(words)} ")


def test_help_lists_every_verb() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    listed = re.findall(r"^    (\w+) ", r.stdout, flags=re.MULTILINE)
    assert tuple(listed) == VERBS


WARN_LIKE_A_LIBRARY = ("import sys, warnings; from chatkit.cli import quiet_libraries; quiet_libraries(sys.argv[1] == 'debug'); "
                       "warnings.warn('`past_key_values` is deprecated', FutureWarning)")


@pytest.mark.parametrize("mode", ["user", "debug"])
def test_library_warnings_are_shown_only_with_debug(mode: str) -> None:
    r = subprocess.run([sys.executable, "-c", WARN_LIKE_A_LIBRARY, mode], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"})
    assert ("FutureWarning" in r.stderr) == (mode == "debug"), r.stderr


def test_a_verb_running_the_dialogue_model_prints_no_warning(tiny_model_dir: Path) -> None:
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "doctor", "--json")
    assert any(c["name"] == "dialogue model" and c["ok"] for c in json.loads(r.stdout)["checks"]), r.stderr
    assert "Warning" not in r.stderr, r.stderr


def test_unknown_key_is_one_line_error_naming_nearest_key() -> None:
    r = run_cli("--set", "retrieval.kk=1", "config", "show")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown config key 'retrieval.kk'")
    assert "retrieval.k'" in lines[0] and "Traceback" not in r.stderr


def test_debug_shows_the_traceback() -> None:
    r = run_cli("--debug", "--set", "retrieval.kk=1", "config", "show")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_config_show_prints_effective_yaml() -> None:
    r = run_cli("--set", "retrieval.k=8", "config", "show")
    assert r.returncode == 0 and "k: 8" in r.stdout


def test_global_options_after_the_verb() -> None:
    r = run_cli("config", "show", "--set", "retrieval.k=4")
    assert r.returncode == 0 and "k: 4" in r.stdout


def test_missing_config_file_is_an_error() -> None:
    r = run_cli("--config", "/nonexistent.yaml", "config", "show")
    assert r.returncode == 1 and r.stderr.startswith("error: config file not found")


def test_home_option_and_env(tmp_path) -> None:
    r = run_cli("--home", str(tmp_path / "h"), "config", "show")
    assert f"data dir: {tmp_path / 'h'}" in r.stdout


def test_doctor_json_without_models() -> None:
    r = run_cli("doctor", "--skip-models", "--json")
    data = json.loads(r.stdout)
    names = {c["name"] for c in data["checks"]}
    assert {"python", "torch", "faiss-cpu", "offline mode", "data dir writable"} <= names
    assert data["ok"] is True and r.returncode == 0


def test_doctor_fails_on_unwritable_home(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    r = run_cli("--home", str(blocker / "sub"), "doctor", "--skip-models", "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_doctor_with_real_models_passes(real_home) -> None:
    r = run_cli("--home", str(real_home), "doctor", "--json")
    data = json.loads(r.stdout)
    failed = [c for c in data["checks"] if c["required"] and not c["ok"]]
    assert r.returncode == 0, failed
    assert any(c["name"] == "dialogue model" and c["ok"] for c in data["checks"])
