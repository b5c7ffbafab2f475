"""Interruption: an answer is saved while it streams (so SIGKILL loses only its last tokens), and
scripts/kill_harness.py, which signals each verb at random moments, finds nothing lost or broken."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chatkit.conversations import ConversationStore
from chatkit.engine import ChatEngine, ChatOptions
from chatkit.recording import SAVE_EVERY_TOKENS, TurnRecording
from scripts.kill_harness import Tally, harness, table
from tests.test_engine import engine, kb_home  # noqa: F401 - the engine tests' tiny model and collection


def test_a_streaming_answer_is_saved_every_few_tokens(engine: ChatEngine, tmp_path: Path) -> None:  # noqa: F811
    # What another connection sees mid-answer is what a SIGKILL at that moment would leave behind.
    gen = dataclasses.replace(engine.settings.generation, max_new_tokens=4 * SAVE_EVERY_TOKENS)
    store = ConversationStore(tmp_path / "c.sqlite")
    recording = TurnRecording(engine, store, "Why is LoRA cheap?", ChatOptions(style="generative", generation=gen))
    onlooker = ConversationStore(tmp_path / "c.sqlite")
    streamed: list[str] = []
    seen: list[tuple[int, str, bool]] = []
    with recording:
        for event in recording.stream():
            if event.kind != "token":
                continue
            streamed.append(event.text)
            (turn,) = onlooker.turns(recording.conversation_id)
            seen.append((len(streamed), turn.answer, turn.complete))
            if len(streamed) == 3 * SAVE_EVERY_TOKENS:
                break
    assert len(streamed) == 3 * SAVE_EVERY_TOKENS, "the tiny model stopped early; the test needs a longer answer"
    for count, saved, complete in seen:
        prefixes = [m for m in range(count + 1) if "".join(streamed[:m]).strip() == saved]
        assert prefixes and not complete, f"after {count} tokens the store holds {saved!r}, complete={complete}"
        assert count - max(prefixes) < SAVE_EVERY_TOKENS, f"{count - max(prefixes)} of {count} tokens unsaved"
    (turn,) = onlooker.turns(recording.conversation_id)
    assert turn.answer == "".join(streamed).strip() and not turn.complete  # the abandoned stream: all of it, incomplete


def check(tallies: list[Tally]) -> None:
    shown = table(tallies) + "\n" + "\n".join(f"{t.verb}: {p}" for t in tallies for p in t.problems)
    for t in tallies:
        assert t.lost == 0 and t.integrity_failures == 0 and t.reruns_failed == 0, shown
        assert t.partial_kept == t.partial_seen, shown
        assert t.tracebacks == 0, shown


def test_adapter_changes_survive_signals(tmp_path: Path) -> None:
    check(harness(["adapters"], n=3, seed=0, work=tmp_path))


@pytest.mark.slow
def test_an_interrupted_ask_keeps_its_partial_answer(tmp_path: Path) -> None:
    # SIGINT, SIGTERM and SIGKILL, each once, mid-answer: issue 20 found answer='' after all three.
    tallies = harness(["ask"], n=3, seed=0, work=tmp_path)
    check(tallies)
    assert tallies[0].partial_seen == 3


@pytest.mark.slow
def test_every_verb_survives_signals(tmp_path: Path) -> None:
    # One kill per verb keeps CI in budget; `python scripts/kill_harness.py` (N=20, every signal) is the full run.
    check(harness(["index-add", "train-sft", "data-synth", "convert", "chat"], n=1, seed=1, work=tmp_path))
