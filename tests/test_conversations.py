from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkit.conversations import ConversationStore
from chatkit.errors import InputError
from chatkit.prompting import SYSTEM_PROMPT, parse_user_message
from chatkit.types import Chunk, Hit
from tests.conftest import run_cli


def hit(text: str, n: int = 1) -> Hit:
    return Hit(Chunk(f"doc/{n}", 0, text, f"Title {n}", ("Head",), 0, len(text), source=f"/x/{n}.md", chunk_id=n), 0.9, n, 0.8)


def test_turns_feedback_and_export_in_training_format(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    conv = store.new_conversation()
    t0 = store.start_turn(conv, "What is LoRA?", [hit("LoRA freezes weights.")], model="m", adapter="base")
    store.finish_turn(t0, "It freezes the base weights [1].", timings={"total_s": 1.0})
    t1 = store.start_turn(conv, "why cheaper?", [hit("Fewer trainable parameters.", 2)])
    store.finish_turn(t1, "Fewer parameters are trained [1].")
    assert store.list_conversations()[0].title == "What is LoRA?"
    assert store.export_rows("good") == []
    store.rate(conv, 0, 1, "clear")
    rows = store.export_rows("good")
    assert len(rows) == 1
    msgs = rows[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"] and msgs[0]["content"] == SYSTEM_PROMPT
    question, blocks = parse_user_message(msgs[1]["content"])
    assert question == "What is LoRA?" and blocks == ["[1] Title 1 > Head\nLoRA freezes weights."]
    store.rate(conv, 1, 1)
    assert len(store.export_rows("good")[0]["messages"]) == 5
    store.rate(conv, 1, -1, "wrong")
    assert store.export_rows("good") == []
    sharegpt = store.export_rows("all", "sharegpt")[0]["conversations"]
    assert sharegpt[1]["from"] == "human" and sharegpt[2]["from"] == "gpt"


WRITER = """
import sys
from pathlib import Path
from chatkit.conversations import ConversationStore

store = ConversationStore(Path(sys.argv[1]))
conv = store.new_conversation()
tid = store.start_turn(conv, "question survives a crash?")
n = 0
while True:  # an answer streaming in, rewritten after every piece, until the process is killed
    n += 1
    store.finish_turn(tid, "partial " * n + "x" * 20000, complete=False)
    if n == 3:
        print(conv, flush=True)
"""


def test_a_process_killed_mid_write_leaves_the_question_and_a_readable_store(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    conv = int(proc.stdout.readline())
    time.sleep(0.3)  # well inside the write loop
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    reopened = ConversationStore(db)
    assert reopened.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    (turn,) = reopened.turns(conv)
    assert turn.question == "question survives a crash?" and not turn.complete
    assert turn.answer.startswith("partial partial partial ")  # the last committed piece
    assert reopened.export_rows() == []  # an incomplete turn is never training data
    reopened.finish_turn(reopened.start_turn(conv, "and after?"), "fine")  # still writable
    assert [t.complete for t in reopened.turns(conv)] == [False, True]


def test_bad_ids_and_ratings(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    with pytest.raises(InputError):
        store.rate(99, 0, 1)
    conv = store.new_conversation()
    with pytest.raises(InputError):
        store.rate(conv, 5, 1)
    with pytest.raises(InputError):
        store.rate(conv, 0, 2)
    with pytest.raises(InputError):
        store.delete(1234)


def test_search_rename_delete(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    a, b = store.new_conversation(), store.new_conversation()
    store.finish_turn(store.start_turn(a, "about faiss"), "FAISS answer")
    store.finish_turn(store.start_turn(b, "about lora"), "LoRA answer")
    assert [c.id for c in store.list_conversations("faiss")] == [a]
    store.rename(b, "LoRA chat")
    assert {c.title for c in store.list_conversations()} == {"about faiss", "LoRA chat"}
    store.delete(a)
    assert [c.id for c in store.list_conversations()] == [b]


def test_cli_export_rate_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ConversationStore(home / "conversations.sqlite")
    conv = store.new_conversation()
    store.finish_turn(store.start_turn(conv, "What is LoRA?", [hit("LoRA text")]), "LoRA [1].")
    store.close()
    assert run_cli("--home", str(home), "conversations", "export", "--rated", "good", "--out", str(tmp_path / "x.jsonl")).returncode == 1
    r = run_cli("--home", str(home), "conversations", "rate", str(conv), "0", "+1", "--comment", "good")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "good.jsonl"
    r = run_cli("--home", str(home), "conversations", "export", "--rated", "good", "--out", str(out))
    assert r.returncode == 0 and len(out.read_text().splitlines()) == 1
    assert json.loads(out.read_text())["messages"][2]["content"] == "LoRA [1]."
    r = run_cli("--home", str(home), "conversations", "show", "77")
    assert r.returncode == 1 and r.stderr.startswith("error: no conversation 77")
    r = run_cli("--home", str(home), "conversations", "ls")
    assert "What is LoRA?" in r.stdout
