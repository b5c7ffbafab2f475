"""chatkit works with no network at all: the models load from the packaged files and the verbs run, because
`models.allow_online` false (the default) turns on the Hugging Face libraries' offline mode.

The CLI runs in a subprocess whose network is really gone: a fresh network namespace (`unshare -rn`) where the
kernel allows it, and in any case every proxy variable pointing at a closed local port with the HF offline
variables unset, so nothing but chatkit's own settings can keep the libraries off the network."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatkit.config import apply_offline, load_settings

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def network_namespace_prefix() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return (unshare, "-rn")
    return ()


def run_cli_without_network(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS + ("NO_PROXY", "no_proxy")}
    proxy = f"http://127.0.0.1:{closed_port()}"
    env.update({var: proxy for var in PROXY_VARS}, CHATKIT_HOME=str(home))
    return subprocess.run([*network_namespace_prefix(), sys.executable, "-m", "chatkit", *args],
                          capture_output=True, text=True, env=env, timeout=900)


def doctor_checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_allow_online_false_turns_offline_mode_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    apply_offline(load_settings())
    assert all(os.environ.get(var) == "1" for var in OFFLINE_VARS)

    apply_offline(load_settings(overrides=["models.allow_online=true"]))
    assert not any(var in os.environ for var in OFFLINE_VARS)


def test_verbs_run_on_local_models_with_no_network(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run_cli_without_network("--set", f"models.dialogue={tiny_model_dir}", "doctor", "--json",
                                     home=tmp_path / "home")
    checks = doctor_checks(result)
    failed = {name: c["detail"] for name, c in checks.items() if c["required"] and not c["ok"]}
    assert result.returncode == 0 and not failed, (failed, result.stderr[-2000:])
    assert checks["embedder"]["ok"] and checks["dialogue model"]["ok"]
    assert checks["offline mode"]["detail"] == "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1"


def test_the_network_is_really_unreachable(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The control: told to download a hub model (allow_online), the same subprocess cannot."""
    result = run_cli_without_network("--set", f"models.dialogue={tiny_model_dir}", "--set", "models.allow_online=true",
                                     "--set", "models.embedder=sentence-transformers/paraphrase-MiniLM-L3-v2",
                                     "doctor", "--json", home=tmp_path / "home")
    checks = doctor_checks(result)
    assert checks["offline mode"]["detail"] == "online allowed by models.allow_online"
    assert checks["dialogue model"]["ok"], checks["dialogue model"]
    assert not checks["embedder"]["ok"] and result.returncode == 1, checks["embedder"]
    assert "connect" in str(checks["embedder"]["detail"]), checks["embedder"]


@pytest.mark.slow
def test_packaged_models_load_and_answer_with_no_network(real_home: Path) -> None:
    result = run_cli_without_network("doctor", "--json", home=real_home)
    checks = doctor_checks(result)
    assert result.returncode == 0, ({n: c["detail"] for n, c in checks.items() if not c["ok"]}, result.stderr[-2000:])
    assert "SmolLM2-135M-Instruct" in str(checks["dialogue model"]["detail"])
    result = run_cli_without_network("ask", "What is LoRA?", "--style", "extractive", home=real_home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LoRA" in result.stdout
