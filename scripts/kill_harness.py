"""Interrupt every verb that writes state at random moments, then check what it left behind.

For each verb (ask, chat, train sft, adapters promote/rollback/rm, data synth, the GGUF -> HF model
conversion, index add) the harness builds a tiny data dir (a tiny real Llama, a few notes, tiny
adapters), then N times: starts the verb as a subprocess, sends SIGINT, SIGTERM or SIGKILL (in turn)
at a seeded random moment, and checks that
  - the stores open and every SQLite file in the data dir passes `PRAGMA integrity_check`,
  - nothing committed before the kill is lost (documents and chunks, turns, adapters, converted models),
  - an interrupted answer is kept, marked incomplete (after SIGKILL: all but the last few tokens),
  - a rerun of the verb completes.
It prints one table row per verb. `tests/test_interrupt.py` runs it with a small N.

    python scripts/kill_harness.py [--n 20] [--seed 0] [--verbs ask,index-add] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
EXIT_WAIT_S = 90  # how long an interrupted verb may take to stop after SIGINT/SIGTERM
SMALL_INDEX = ["--set", "retrieval.batch_size=2", "--set", "retrieval.chunk_tokens=32", "--set", "retrieval.chunk_overlap=4"]
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Tally:
    """One verb's results; `problems` says what each failure was, for the report."""

    verb: str
    kills: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    integrity_failures: int = 0
    partial_seen: int = 0
    partial_kept: int = 0
    reruns_failed: int = 0
    tracebacks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def kill_points(self) -> int:
        return sum(self.kills.values())

    def problem(self, what: str) -> None:
        self.problems.append(what)

    def ok(self) -> bool:
        return not (self.lost or self.integrity_failures or self.reruns_failed or self.partial_kept < self.partial_seen)


# --- running chatkit ----------------------------------------------------------------------------


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ, CHATKIT_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def chatkit(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "chatkit", "--home", str(home), *args]


def run(cmd: list[str], home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env_for(home), timeout=timeout)


def must(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


@dataclass
class Killed:
    sig: int
    returncode: int
    stdout: str
    stderr: str
    finished_first: bool  # the verb completed before the moment came: not a kill point


def kill_at(cmd: list[str], home: Path, sig: int, moment: Callable[[subprocess.Popen[bytes], list[bytes]], None]) -> Killed:
    """Start `cmd`, wait for `moment` (which reads stdout into the list it is given), send `sig`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(home))
    out: list[bytes] = []
    moment(proc, out)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(sig)
    try:
        rest, err = proc.communicate(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, err = proc.communicate()
        err += f"\n[harness: still running {EXIT_WAIT_S} s after signal {sig}; killed]".encode()
    out.append(rest)
    return Killed(sig, proc.returncode, b"".join(out).decode("utf-8", "replace"), err.decode("utf-8", "replace"), finished)


def after_seconds(delay: float) -> Callable[[subprocess.Popen[bytes], list[bytes]], None]:
    def wait(proc: subprocess.Popen[bytes], out: list[bytes]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=delay)

    return wait


def after_printed(chars: int, limit_s: float = 300) -> Callable[[subprocess.Popen[bytes], list[bytes]], None]:
    """Once the answer on stdout has `chars` characters: the signal lands mid-answer."""

    def wait(proc: subprocess.Popen[bytes], out: list[bytes]) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + limit_s
        while len(b"".join(out).decode("utf-8", "ignore").strip()) < chars and time.monotonic() < deadline:
            piece = os.read(proc.stdout.fileno(), 4096)
            if not piece:
                return
            out.append(piece)

    return wait


# --- what a data dir holds ----------------------------------------------------------------------


def sqlite_files(home: Path) -> Iterator[Path]:
    for p in sorted(home.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal")):
            with p.open("rb") as fh:
                if fh.read(16) == SQLITE_MAGIC:
                    yield p


def integrity_failures(home: Path) -> list[str]:
    bad = []
    for p in sqlite_files(home):
        try:
            db = sqlite3.connect(p)
            try:
                result = db.execute("PRAGMA integrity_check").fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            bad.append(f"{p.relative_to(home)}: {exc}")
            continue
        if result != [("ok",)]:
            bad.append(f"{p.relative_to(home)}: {result[:3]}")
    return bad


def collection_docs(home: Path, name: str) -> dict[str, tuple[str, int]]:
    """doc_id -> (content hash, chunks actually stored), through the collection's own store."""
    db = sqlite3.connect(home / "collections" / name / "store.sqlite")
    try:
        rows = db.execute("SELECT d.doc_id, d.content_hash, COUNT(c.id) FROM documents d "
                          "LEFT JOIN chunks c ON c.doc = d.id GROUP BY d.id").fetchall()
    finally:
        db.close()
    return {doc: (h, n) for doc, h, n in rows}


def stored_turns(home: Path) -> dict[int, tuple[str, str, bool]]:
    from chatkit.config import Paths
    from chatkit.conversations import ConversationStore

    store = ConversationStore(Paths(home).conversations_db)
    try:
        return {t.id: (t.question, t.answer, t.complete) for t in store.all_turns()}
    finally:
        store.close()


def adapters_state(home: Path) -> tuple[set[str], str | None]:
    from chatkit.config import Paths
    from chatkit.training import registry

    paths = Paths(home)
    names = {a.name for a in registry.list_adapters(paths)}  # inspects each adapter's files
    return names, registry.default_adapter(paths)


# --- the tiny setup -------------------------------------------------------------------------------


def write_notes(folder: Path, n: int, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"Note {tag}-{i} sentence {j} says that topic {i * 31 + j} of {tag} matters for LoRA training."
                        for j in range(6))
        (folder / f"note-{tag}-{i:02d}.md").write_text(f"# Note {tag} {i}\n\n## Part {i}\n\n{body}\n")
    return folder


@dataclass
class Setup:
    work: Path
    tiny_model: Path
    startup_s: float  # the interpreter and chatkit's argument parser, before any verb runs

    def home(self, verb: str) -> Path:
        home = self.work / verb / "home"
        shutil.rmtree(home.parent, ignore_errors=True)
        home.mkdir(parents=True)
        return home

    def model_args(self, *more: str) -> list[str]:
        return ["--set", f"models.dialogue={self.tiny_model}", "--set", "models.dtype=float32",
                "--set", "generation.backend=hf", *more]


def make_setup(work: Path) -> Setup:
    from tests.conftest import build_tiny_model

    model = work / "tiny-llama"
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    began = time.monotonic()
    must(run(chatkit(work, "--version"), work), "chatkit --version")
    return Setup(work, model, time.monotonic() - began)


# --- the verbs ------------------------------------------------------------------------------------


class Verb:
    """One verb under test. `prepare` builds its data dir once; then, for each kill point, `start`
    gives the command and the moment, `check` compares the data dir with what was there before."""

    name = ""

    def __init__(self, setup: Setup, rng: random.Random) -> None:
        self.setup = setup
        self.rng = rng
        self.home = setup.home(self.name)
        self.duration = 10.0  # one uninterrupted run, measured by prepare()

    def timed(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        result = must(run(cmd, self.home), " ".join(cmd[3:]))
        self.duration = time.monotonic() - began
        return result

    def prepare(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def command(self, i: int) -> list[str]:
        raise NotImplementedError

    def moment(self, i: int) -> Callable[[subprocess.Popen[bytes], list[bytes]], None]:
        """A moment while the verb works: after the interpreter has started (a signal during its start-up
        reaches no chatkit code) and before an uninterrupted run would have finished."""
        return after_seconds(self.rng.uniform(min(self.setup.startup_s, 0.8 * self.duration), self.duration))

    def lost(self, before: Any, after: Any, i: int) -> list[str]:
        raise NotImplementedError

    def partial(self, killed: Killed, i: int, tally: Tally) -> None:
        """Verbs that answer check the kept partial answer here."""

    def rerun(self, i: int) -> str | None:
        """Run the verb again to completion; the problem, or None."""
        result = run(self.command(i), self.home)
        return None if result.returncode == 0 else f"rerun exit {result.returncode}: {result.stderr.strip()[-300:]}"


class IndexAdd(Verb):
    name = "index add"

    def prepare(self) -> None:
        self.timed(chatkit(self.home, *SMALL_INDEX, "index", "add", str(write_notes(self.home.parent / "base", 8, "base")), "-c", "c"))

    def command(self, i: int) -> list[str]:
        folder = self.home.parent / f"more-{i}"
        if not folder.exists():
            write_notes(folder, 6, f"m{i}")
        return chatkit(self.home, *SMALL_INDEX, "index", "add", str(folder), "-c", "c")

    def snapshot(self) -> dict[str, tuple[str, int]]:
        return collection_docs(self.home, "c")

    def lost(self, before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]], i: int) -> list[str]:
        return [f"document {d} lost or changed" for d, v in before.items() if after.get(d) != v]

    def rerun(self, i: int) -> str | None:
        problem = super().rerun(i)
        docs = collection_docs(self.home, "c")
        partial = [d for d, (h, _) in docs.items() if h.startswith("partial:")]
        missing = [f"m{i}-{k:02d}" for k in range(6) if not any(f"note-m{i}-{k:02d}" in d for d in docs)]
        return problem or (f"after the rerun: partial {partial}, missing {missing}" if partial or missing else None)


class Ask(Verb):
    name = "ask"

    def prepare(self) -> None:
        from tests.test_engine import DOCS

        notes = self.home.parent / "notes"
        notes.mkdir()
        for file, text in DOCS.items():
            (notes / file).write_text(text)
        must(run(chatkit(self.home, "index", "add", str(notes), "-c", "notes"), self.home), "index notes")
        self.timed(self.ask(-1, "--set", "generation.max_new_tokens=8"))
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(self.setup.tiny_model))
        self.longest_token = max(len(tok.decode([t])) for t in range(len(tok)))

    def ask(self, i: int, *more: str) -> list[str]:
        return chatkit(self.home, *self.setup.model_args(*more), "ask", f"Why is LoRA cheap? (kill {i})",
                       "--collection", "notes", "--style", "generative")

    def command(self, i: int) -> list[str]:
        return self.ask(i, "--set", "generation.max_new_tokens=1500")

    def moment(self, i: int) -> Callable[[subprocess.Popen[bytes], list[bytes]], None]:
        return after_printed(self.rng.randint(1, 400))

    def snapshot(self) -> dict[int, tuple[str, str, bool]]:
        return stored_turns(self.home)

    def lost(self, before: dict[int, tuple[str, str, bool]], after: dict[int, tuple[str, str, bool]], i: int) -> list[str]:
        return [f"turn {t} lost or changed" for t, v in before.items() if after.get(t) != v]

    def partial(self, killed: Killed, i: int, tally: Tally) -> None:
        printed = killed.stdout.strip()
        if not printed:
            return
        tally.partial_seen += 1
        turns = [v for v in stored_turns(self.home).values() if v[0] == f"Why is LoRA cheap? (kill {i})"]
        if len(turns) != 1:
            tally.problem(f"ask kill {i}: {len(turns)} stored turns for the question")
            return
        _, answer, complete = turns[0]
        if killed.sig == signal.SIGKILL:  # no handler runs: the last periodic save is what is kept
            from chatkit.recording import SAVE_EVERY_TOKENS

            kept = printed.startswith(answer) and len(printed) - len(answer) <= SAVE_EVERY_TOKENS * self.longest_token
        else:  # the handler stores all that was streamed (a token may be stored but not yet printed)
            kept = answer.startswith(printed)
        if kept and answer and not complete:
            tally.partial_kept += 1
        else:
            tally.problem(f"ask kill {i} ({signal.Signals(killed.sig).name}): printed {len(printed)} chars, "
                          f"stored {len(answer)} chars, complete={complete}")

    def rerun(self, i: int) -> str | None:
        result = run(self.ask(i, "--set", "generation.max_new_tokens=8"), self.home)
        return None if result.returncode == 0 else f"rerun exit {result.returncode}: {result.stderr.strip()[-300:]}"


class TrainSft(Verb):
    name = "train sft"

    def prepare(self) -> None:
        self.data = self.home.parent / "d.jsonl"
        rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
                for i in range(8)]
        self.data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.timed(self.train("first"))

    def train(self, name: str, *more: str) -> list[str]:
        return chatkit(self.home, *self.setup.model_args("--set", "training.batch_size=2"), "train", "sft",
                       "--data", str(self.data), "--name", name, "--max-steps", "4", *more)

    def command(self, i: int) -> list[str]:
        return self.train(f"k{i}")

    def snapshot(self) -> tuple[set[str], str | None]:
        return adapters_state(self.home)

    def lost(self, before: tuple[set[str], str | None], after: tuple[set[str], str | None], i: int) -> list[str]:
        return [f"adapter {a} lost" for a in sorted(before[0] - after[0])]

    def rerun(self, i: int) -> str | None:
        from chatkit.config import Paths
        from chatkit.training import runs

        names, _ = adapters_state(self.home)
        if f"k{i}" in names:
            return None  # it finished before the signal took effect
        resumable = (runs.runs_dir(Paths(self.home)) / f"k{i}" / runs.RUN_FILE).is_file()
        result = run(self.train(f"k{i}", *(["--resume"] if resumable else [])), self.home)
        if result.returncode != 0:
            return f"rerun ({'--resume' if resumable else 'fresh'}) exit {result.returncode}: {result.stderr.strip()[-300:]}"
        return None if f"k{i}" in adapters_state(self.home)[0] else f"rerun left no adapter k{i}"


class Adapters(Verb):
    """promote, rollback and rm in turn, on adapters a, b, c (rm'd ones are published again)."""

    name = "adapters promote/rollback/rm"
    POOL = ("a", "b", "c")

    def prepare(self) -> None:
        os.environ["CHATKIT_HOME"] = str(self.home)  # make_adapter publishes into $CHATKIT_HOME
        from tests.test_training_registry import make_adapter

        for name in (*self.POOL, "rmme"):
            make_adapter(name, self.setup.tiny_model)
        self.timed(chatkit(self.home, *self.setup.model_args(), "adapters", "promote", "a", "--force"))

    def op(self, i: int) -> list[str]:
        kind = ("promote", "rollback", "rm")[i % 3]
        if kind == "promote":
            return ["promote", self.POOL[i % len(self.POOL)], "--force"]
        return ["rollback"] if kind == "rollback" else ["rm", "rmme"]

    def command(self, i: int) -> list[str]:
        if self.op(i)[0] == "rm" and "rmme" not in adapters_state(self.home)[0]:
            os.environ["CHATKIT_HOME"] = str(self.home)
            from tests.test_training_registry import make_adapter

            make_adapter("rmme", self.setup.tiny_model)
        return chatkit(self.home, *self.setup.model_args(), "adapters", *self.op(i))

    def snapshot(self) -> tuple[set[str], str | None]:
        return adapters_state(self.home)

    def lost(self, before: tuple[set[str], str | None], after: tuple[set[str], str | None], i: int) -> list[str]:
        removed = {"rmme"} if self.op(i)[0] == "rm" else set()
        problems = [f"adapter {a} lost" for a in sorted(before[0] - after[0] - removed)]
        if after[1] is not None and after[1] not in after[0]:
            problems.append(f"the default {after[1]!r} is not a registered adapter")
        return problems

    def rerun(self, i: int) -> str | None:
        op = self.op(i)
        result = run(self.command(i) if op[0] != "rm" else chatkit(self.home, "adapters", *op), self.home)
        lines = result.stderr.strip().splitlines()
        settled = result.returncode == 0 or (result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"))
        names, default = adapters_state(self.home)
        if not settled:
            return f"rerun of {' '.join(op)}: exit {result.returncode}: {result.stderr.strip()[-300:]}"
        if op[0] == "promote" and default != op[1]:
            return f"after promote {op[1]} the default is {default}"
        if op[0] == "rm" and "rmme" in names:
            return "after rm rmme it is still listed"
        return None


class DataSynth(Verb):
    name = "data synth"

    def prepare(self) -> None:
        notes = self.home.parent / "notes"  # real documents: synth needs headings and defining sentences
        notes.mkdir()
        for doc in sorted((ROOT / "corpora" / "curriculum").glob("*.md"))[:3]:
            shutil.copy(doc, notes / doc.name)
        must(run(chatkit(self.home, "index", "add", str(notes), "-c", "s"), self.home), "index for synth")
        self.timed(self.command(-1))

    def out(self, i: int) -> Path:
        return self.home.parent / f"synth-{i}.jsonl"

    def command(self, i: int) -> list[str]:
        return chatkit(self.home, "data", "synth", "--collection", "s", "--out", str(self.out(i)), "--n", "30", "--force")

    def snapshot(self) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        done = {p.name: p.read_text() for p in sorted(self.home.parent.glob("synth-*.jsonl*"))}
        return collection_docs(self.home, "s"), done

    def lost(self, before: Any, after: Any, i: int) -> list[str]:
        problems = [f"document {d} lost or changed" for d, v in before[0].items() if after[0].get(d) != v]
        problems += [f"{name} changed" for name, text in before[1].items() if after[1].get(name) != text]
        for name, text in after[1].items():
            if name not in before[1]:
                try:
                    [json.loads(line) for line in text.splitlines() if line.strip()]
                except ValueError:
                    problems.append(f"{name} is half-written")
        return problems


class Convert(Verb):
    """The GGUF -> Hugging Face folder conversion (chatkit/models.py) of a tiny GGUF."""

    name = "model conversion"
    # As a verb runs it: chatkit's command line turns Ctrl-C into "interrupted", exit 130.
    SCRIPT = ("import sys\ntry:\n    from pathlib import Path\n    from chatkit.models import ensure_converted\n"
              "    ensure_converted(Path(sys.argv[1]), Path(sys.argv[2]))\n"
              "except KeyboardInterrupt:\n    sys.exit(130)\n")

    def prepare(self) -> None:
        from tests.test_gguf_write import write_tiny

        self.gguf = write_tiny(self.setup.tiny_model, self.home.parent / "tiny.gguf")
        self.timed(self.command(-1))

    def target(self, i: int) -> Path:
        return self.home / "models" / f"tiny-{i}"

    def command(self, i: int) -> list[str]:
        return [sys.executable, "-c", self.SCRIPT, str(self.gguf), str(self.target(i))]

    def snapshot(self) -> dict[str, str]:
        from chatkit.models import COMPLETE_MARKER, is_converted

        models = self.home / "models"
        return {p.name: (p / COMPLETE_MARKER).read_text() for p in sorted(models.iterdir()) if is_converted(p)} if models.is_dir() else {}

    def lost(self, before: dict[str, str], after: dict[str, str], i: int) -> list[str]:
        problems = [f"converted model {m} lost or changed" for m, v in before.items() if after.get(m) != v]
        target = self.target(i)
        if target.exists() and target.name not in after:
            problems.append(f"{target.name} exists without its completion marker")
        return problems

    def rerun(self, i: int) -> str | None:
        problem = super().rerun(i)
        from chatkit.models import is_converted

        return problem or (None if is_converted(self.target(i)) else "rerun left no converted folder")


class Chat(Verb):
    """`chatkit chat` in a tmux pane: a question is typed, the signal lands while the answer streams."""

    name = "chat"

    def prepare(self) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed: `chatkit chat` needs a terminal")
        Ask.prepare(self)  # type: ignore[arg-type]

    ask = Ask.ask
    snapshot = Ask.snapshot
    lost = Ask.lost

    def command(self, i: int) -> list[str]:
        return chatkit(self.home, *self.setup.model_args("--set", "generation.max_new_tokens=1500",
                                                         "--set", "engine.answer_style=generative"),
                       "chat", "--new", "--collection", "notes")

    def question(self, i: int) -> str:
        return f"Why is LoRA cheap? (chat {i})"

    def run_in_tmux(self, i: int, sig: int, wait_chars: int) -> Killed:
        session = f"chatkit-kill-{os.getpid()}-{i}"
        env = env_for(self.home)
        shell = " ".join(f"'{a}'" for a in self.command(i))
        exports = " ".join(f"{k}='{env[k]}'" for k in ("CHATKIT_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH"))
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", f"env {exports} {shell}"], check=True)
        try:
            pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                                     text=True, check=True).stdout.strip())
            deadline = time.monotonic() + 180
            while "Ask" not in self.screen(session) and time.monotonic() < deadline:  # the input box is up
                time.sleep(0.5)
            subprocess.run(["tmux", "send-keys", "-t", session, "-l", self.question(i)], check=True)
            subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
            while time.monotonic() < deadline:
                turn = self.turn(i)
                if turn is not None and len(turn[1]) >= wait_chars:
                    break
                time.sleep(0.2)
            seen = self.turn(i)
            if seen is not None and seen[2]:
                return Killed(sig, 0, "", "", True)  # the answer completed before the moment came
            os.kill(pid, sig)
            stop = time.monotonic() + EXIT_WAIT_S
            while time.monotonic() < stop and pid_alive(pid):
                time.sleep(0.2)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            return Killed(sig, 0, seen[1] if seen else "", "", False)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    def turn(self, i: int) -> tuple[str, str, bool] | None:
        try:
            turns = [v for v in stored_turns(self.home).values() if v[0] == self.question(i)]
        except sqlite3.Error:
            return None
        return turns[0] if turns else None

    @staticmethod
    def screen(session: str) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def partial(self, killed: Killed, i: int, tally: Tally) -> None:
        """What was saved while it streamed (`killed.stdout`) must still be there, incomplete."""
        if not killed.stdout:
            return
        tally.partial_seen += 1
        turn = self.turn(i)
        if turn is not None and turn[1].startswith(killed.stdout) and not turn[2]:
            tally.partial_kept += 1
        else:
            tally.problem(f"chat kill {i}: saved {len(killed.stdout)} chars while streaming, now {turn}")

    def rerun(self, i: int) -> str | None:
        result = run(Ask.ask(self, i, "--set", "generation.max_new_tokens=8"), self.home)  # type: ignore[arg-type]
        return None if result.returncode == 0 else f"rerun (ask in the same store) exit {result.returncode}"


def chatkit_traceback(stderr: str) -> bool:
    """A traceback through chatkit's code; one from the interpreter's own start-up (site, .pth files)
    comes before any chatkit code runs."""
    return "Traceback" in stderr and re.search(r'File "[^"]*/chatkit/', stderr) is not None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


VERBS: dict[str, type[Verb]] = {
    "ask": Ask, "chat": Chat, "train-sft": TrainSft, "adapters": Adapters, "data-synth": DataSynth,
    "convert": Convert, "index-add": IndexAdd,
}


# --- the loop -------------------------------------------------------------------------------------


def exercise(verb: Verb, n: int) -> Tally:
    tally = Tally(verb.name)
    try:
        verb.prepare()
    except Exception as exc:  # a verb that cannot be set up is reported, not fatal to the others
        tally.problem(f"setup failed: {exc}")
        tally.reruns_failed += 1
        return tally
    for i in range(n):
        sig = SIGNALS[i % len(SIGNALS)]
        before = verb.snapshot()
        if isinstance(verb, Chat):
            killed = verb.run_in_tmux(i, sig, verb.rng.randint(1, 200))
        else:
            killed = kill_at(verb.command(i), verb.home, sig, verb.moment(i))
        if killed.finished_first:
            tally.problem(f"kill {i}: finished before the signal (exit {killed.returncode})")
        else:
            name = signal.Signals(sig).name
            tally.kills[name] = tally.kills.get(name, 0) + 1
        if sig != signal.SIGKILL and chatkit_traceback(killed.stderr):
            tally.tracebacks += 1
            tally.problem(f"kill {i} ({signal.Signals(sig).name}): traceback: {killed.stderr.strip()[-400:]}")
        bad = integrity_failures(verb.home)
        try:
            after = verb.snapshot()
        except Exception as exc:
            bad.append(f"stores do not open: {type(exc).__name__}: {exc}")
            after = None
        if bad:
            tally.integrity_failures += 1
            tally.problem(f"kill {i}: {'; '.join(bad)}")
        if after is not None:
            lost = verb.lost(before, after, i)
            if lost:
                tally.lost += len(lost)
                tally.problem(f"kill {i} ({signal.Signals(sig).name}): {'; '.join(lost[:5])}")
        verb.partial(killed, i, tally)
        problem = verb.rerun(i)
        if problem:
            tally.reruns_failed += 1
            tally.problem(f"kill {i}: {problem}")
    return tally


def table(tallies: list[Tally]) -> str:
    head = ("verb", "kill points (INT/TERM/KILL)", "data lost", "integrity failures", "partial answers kept",
            "reruns failed", "tracebacks")
    rows = [head]
    for t in tallies:
        kills = f"{t.kill_points} ({t.kills.get('SIGINT', 0)}/{t.kills.get('SIGTERM', 0)}/{t.kills.get('SIGKILL', 0)})"
        partial = f"{t.partial_kept}/{t.partial_seen}" if t.partial_seen else "n/a"
        rows.append((t.verb, kills, str(t.lost), str(t.integrity_failures), partial, str(t.reruns_failed), str(t.tracebacks)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def harness(verbs: list[str], n: int, seed: int, work: Path) -> list[Tally]:
    setup = make_setup(work)
    tallies = []
    for name in verbs:
        began = time.monotonic()
        tally = exercise(VERBS[name](setup, random.Random(f"{seed}:{name}")), n)
        print(f"{tally.verb}: {tally.kill_points} kill points in {time.monotonic() - began:.0f} s\n"
              f"{table([tally]).splitlines()[-1]}", *(f"  {p}" for p in tally.problems), sep="\n", file=sys.stderr, flush=True)
        tallies.append(tally)
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="kill points per verb (default: 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbs", default=",".join(VERBS), help=f"comma-separated, of: {', '.join(VERBS)}")
    parser.add_argument("--work", type=Path, help="folder for the tiny setups (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    verbs = [v.strip() for v in args.verbs.split(",") if v.strip()]
    unknown = [v for v in verbs if v not in VERBS]
    if unknown:
        parser.error(f"unknown verbs {unknown}; choose from {', '.join(VERBS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="chatkit-kill-"))
    tallies = harness(verbs, args.n, args.seed, work)
    print(table(tallies))
    for t in tallies:
        for p in t.problems:
            print(f"  {t.verb}: {p}")
    if args.json:
        args.json.write_text(json.dumps([t.__dict__ | {"kill_points": t.kill_points} for t in tallies], indent=2))
    return 0 if all(t.ok() for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
