from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_help_lists_verbs_by_stage() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for verb in ("index", "search", "ask", "chat", "train", "adapters", "conversations", "eval", "serve", "doctor", "config"):
        assert verb in r.stdout


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
