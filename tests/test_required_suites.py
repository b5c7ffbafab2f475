"""`make test` (CHATKIT_REQUIRE_SUITES=1) fails when the llama.cpp suite or the OpenAPI fuzz cannot run,
unless CHATKIT_ALLOW_SKIP=1; every run ends with one line naming the suites that skipped. A missing
package is simulated by a module on PYTHONPATH whose import fails, with pytest plugins not auto-loaded
(schemathesis registers one, which a missing schemathesis would not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def pytest_run(tmp_path: Path, broken_module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    shim = tmp_path / "shim" / broken_module
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(f"raise ModuleNotFoundError('{broken_module} not installed (simulated)')\n")
    full_env = {k: v for k, v in os.environ.items() if k not in ("CHATKIT_REQUIRE_SUITES", "CHATKIT_ALLOW_SKIP")}
    full_env.update(env, PYTHONPATH=str(tmp_path / "shim"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, env=full_env, timeout=300)


def test_make_test_fails_without_the_llamacpp_suite(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "llama_cpp", "tests/test_llamacpp.py", CHATKIT_REQUIRE_SUITES="1")
    assert result.returncode == 1, result.stdout
    assert "required test suites cannot run: tests/test_llamacpp.py: import llama_cpp" in result.stdout
    assert "CHATKIT_ALLOW_SKIP=1" in result.stdout


def test_make_test_fails_without_schemathesis(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "schemathesis", "tests/test_server.py", CHATKIT_REQUIRE_SUITES="1")
    assert result.returncode == 1, result.stdout
    assert "tests/test_server.py: import schemathesis" in result.stdout


def test_allowed_skips_pass_and_are_named_in_the_last_lines(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "llama_cpp", "tests/test_llamacpp.py", CHATKIT_REQUIRE_SUITES="1",
                        CHATKIT_ALLOW_SKIP="1")
    assert result.returncode == 5, result.stdout  # 5: no test ran, the file skipped as a whole; not 1
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("skipped suites: tests/test_llamacpp.py ("), lines[-3:]
    assert "simulated" in lines[-2]


def test_a_missing_fuzzer_is_named_although_its_file_is_collected(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "schemathesis", "--collect-only", "tests/test_server.py")
    assert result.returncode == 0, result.stdout
    summary = [line for line in result.stdout.splitlines() if line.startswith("skipped suites: ")]
    assert summary and "tests/test_server.py (import schemathesis: ModuleNotFoundError" in summary[0], result.stdout[-2000:]
