"""The chat app's pieces that need no screen: citation links, highlighting, saved state, adapters,
stored passages, and that `chatkit --help` never imports the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chatkit.config import Paths
from chatkit.conversations import ConversationStore, passages_from_hits
from chatkit.tui.adapters import list_adapters
from chatkit.tui.citations import cited_number, linkify
from chatkit.tui.highlight import matching_spans
from chatkit.tui.session import TurnRecord, hits_from_passages
from chatkit.tui.state import UIState
from chatkit.types import Chunk, Hit
from tests.conftest import run_cli


def test_citations_become_links_only_for_shown_passages() -> None:
    text = linkify("LoRA is cheap [1][2]. See [9] and [link](http://x).", 2)
    assert text.startswith("LoRA is cheap [\\[1\\]](cite:1)[\\[2\\]](cite:2). See [9]")
    assert "[link](http://x)" in text
    assert cited_number("cite:2") == 2 and cited_number("http://x") is None


def test_question_words_are_found_with_simple_inflections() -> None:
    text = "Adapters freeze the weights; an adapter is cheaper to train."
    found = [text[a:b] for a, b in matching_spans(text, "Why are LoRA adapters cheaper than the weights?")]
    assert found == ["Adapters", "weights", "adapter", "cheaper"]


def test_passages_are_reflowed_but_keep_their_blocks() -> None:
    from chatkit.tui.widgets.sources import reflow

    text = "LoRA freezes the\nbase weights.\n\n- one item\n- two\n  continued\n## Next\nmore"
    assert reflow(text) == "LoRA freezes the base weights.\n\n- one item\n- two continued\n## Next\nmore"


def test_state_survives_a_broken_file_and_keeps_the_last_questions(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert UIState.load(path) == UIState()
    path.write_text(json.dumps({"draft": "half a question", "unknown_key": 1, "conversation_id": 3}))
    state = UIState.load(path)
    assert (state.draft, state.conversation_id) == ("half a question", 3)
    state.prompt_history = [f"q{i}" for i in range(500)]
    state.save(path)
    assert UIState.load(path).prompt_history[-1] == "q499" and len(UIState.load(path).prompt_history) == 200


def test_adapters_are_base_plus_usable_registered_ones(tmp_path: Path) -> None:
    paths = Paths(tmp_path).ensure()
    assert list_adapters(paths) == ["base"]
    good = paths.adapters / "tutor"
    good.mkdir()
    (good / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (good / "chatkit-adapter.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (good / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    (paths.adapters / "half-written").mkdir()
    assert list_adapters(paths) == ["base", "tutor"]


def test_stored_passages_come_back_as_hits(tmp_path: Path) -> None:
    chunk = Chunk("docs/lora", 0, "LoRA freezes weights.", "LoRA", ("How", "Why"), 0, 21, source="/d/lora.md", chunk_id=7)
    hit = Hit(chunk, 0.5, 1, 0.7, None, "notes")
    (back,) = hits_from_passages(tuple(passages_from_hits([hit])))
    assert back.chunk.heading == "How > Why" and back.chunk.source == "/d/lora.md" and back.chunk.chunk_id == 7
    assert back.collection == "notes" and back.dense_score == 0.7
    store = ConversationStore(tmp_path / "c.sqlite")
    conv = store.new_conversation()
    turn = store.start_turn(conv, "What is LoRA?", [hit], source="tui")
    store.finish_turn(turn, "It freezes weights [1].", complete=True)
    record = TurnRecord.from_stored(store.turns(conv)[0])
    assert record.cited == (1,) and record.hits[0].chunk.title == "LoRA" and record.idx == 0


def test_help_does_not_import_the_app_or_textual() -> None:
    code = ("import sys; from chatkit.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.startswith(('textual', 'chatkit.tui', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_chat_verb_is_registered() -> None:
    result = run_cli("chat", "--help")
    assert result.returncode == 0 and "--conversation ID" in result.stdout and "--adapter" in result.stdout
    result = run_cli("chat", "--new", "--conversation", "3")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_passages_and_titles_shown_in_the_tui_carry_no_escape_sequences() -> None:
    from textual.widgets import Label

    from chatkit.conversations import ConversationInfo
    from chatkit.tui.widgets.sidebar import ConversationItem
    from chatkit.tui.widgets.sources import passage_content

    evil = "LoRA\x1b]0;pwned\x07 \x1b[2J\u202etxt.exe"
    chunk = Chunk("notes/lora", 0, f"body {evil}", evil, (evil,), 0, 0, source=evil)
    shown = passage_content(Hit(chunk, 1.0, 1), 1, "lora").plain
    assert "\x1b" not in shown and "\u202e" not in shown and "pwned" not in shown and "LoRA" in shown
    label = ConversationItem(ConversationInfo(1, evil, 0.0, 0.0, 2))._pending_children[0]
    assert isinstance(label, Label)
    title = str(label.render())
    assert "\x1b" not in title and "\u202e" not in title and "LoRA" in title
