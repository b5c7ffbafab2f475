"""`chatkit chat` in a real terminal (tmux) with the real default model: an answer with sources
shows up, and ctrl+q quits. The work is in scripts/tmux_chat_check.sh; it skips without tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_chat_in_tmux_shows_an_answer_with_sources(real_home: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    env = dict(os.environ, CHATKIT_HOME=str(real_home), CHECK_TIMEOUT="600")
    beside = Path(sys.executable).parent / "chatkit"  # the chatkit of the interpreter running the tests
    if beside.is_file():
        env["CHATKIT_BIN"] = str(beside)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "tmux_chat_check.sh")], capture_output=True, text=True,
                            env=env, timeout=1500)
    assert result.returncode == 0 and "OK:" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
