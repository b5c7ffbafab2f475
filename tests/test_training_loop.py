"""The whole loop with the tiny model: ask -> rate -> export -> validate -> train -> the adapter loads
and answers; plus Ctrl-C -> checkpoint -> --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkit.config import Paths
from chatkit.conversations import ConversationStore
from chatkit.models import model_fingerprint
from chatkit.training import registry, runs
from chatkit.types import Chunk, Hit
from tests.conftest import read_jsonl, run_cli

QUESTION = "What is LoRA?"
ANSWER = "LoRA freezes the pre-trained weights and learns two small low-rank matrices [1]."


def hit(text: str, n: int) -> Hit:
    return Hit(Chunk(f"doc/{n}", 0, text, f"Title {n}", ("Head",), 0, len(text), source=f"/x/{n}.md", chunk_id=n), 0.9, n, 0.8)


def store_conversations(home: Path) -> None:
    store = ConversationStore(Paths(home).conversations_db)
    good = store.new_conversation()
    tid = store.start_turn(good, QUESTION, [hit("LoRA freezes the pre-trained weights and learns two small low-rank matrices.", 1),
                                            hit("FAISS stores dense vectors.", 2)], model="tiny")
    store.finish_turn(tid, ANSWER)
    store.rate(good, 0, 1)
    bad = store.new_conversation()
    tid = store.start_turn(bad, "What is BM25?", [hit("BM25 ranks documents.", 3)], model="tiny")
    store.finish_turn(tid, "A vector database.")
    store.rate(bad, 0, -1, "wrong")
    store.close()


def test_ask_rate_export_validate_train_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    from chatkit.generation import GenParams
    from chatkit.generation.hf import HFGenerator

    home = Path(os.environ["CHATKIT_HOME"])
    store_conversations(home)
    data = tmp_path / "good.jsonl"
    r = run_cli("conversations", "export", "--rated", "good", "--out", str(data))
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(data)) == 1
    model = ["--set", f"models.dialogue={tiny_model_dir}"]
    r = run_cli(*model, "train", "validate", str(data), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["formats"] == {"rag": 1}
    r = run_cli(*model, "--set", "training.learning_rate=0.003", "--set", "training.lora_r=8",
                "train", "sft", "--data", str(data), "--name", "mine", "--max-steps", "16", "--json",
                env={"CHATKIT_PROGRESS_EVERY_S": "0"})
    assert r.returncode == 0, r.stderr
    assert "step 16/16: loss " in r.stderr  # a log file gets progress lines, not a silent wait
    result = json.loads(r.stdout)
    assert result["metrics"]["steps"] == 16 and result["metrics"]["tokens_per_s"] > 0

    paths = Paths(home)
    info = registry.get_adapter(paths, "mine")
    assert info.path == registry.adapter_path(paths, "mine")
    assert info.meta["base_fingerprint"] == model_fingerprint(str(tiny_model_dir))
    import hashlib

    assert info.meta["data"]["train"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert info.meta["config"]["lora_r"] == 8 and info.meta["metrics"]["train_loss"] > 0
    assert not (runs.runs_dir(paths) / "mine").exists()

    gen = HFGenerator(str(tiny_model_dir))
    row = read_jsonl(data)[0]["messages"]
    prompt = gen.render(row[:-1])
    answer = gen.tokenizer(ANSWER + "<|im_end|>", add_special_tokens=False)["input_ids"]
    base_nll, n = gen.answer_nll(prompt, answer)
    gen.load_adapter("mine", info.path)
    tuned_nll, _ = gen.answer_nll(prompt, answer)
    assert tuned_nll < base_nll * 0.8, (base_nll / n, tuned_nll / n)
    text = gen.generate(prompt, GenParams(max_new_tokens=12, repetition_penalty=1.0))
    assert isinstance(text, str) and text.strip()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Found by the kill harness: `--resume` refused such a run ("no checkpoint to resume")."""
    home = Path(os.environ["CHATKIT_HOME"])
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                       {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(8)) + "\n")
    args = ["--set", f"models.dialogue={tiny_model_dir}", "--set", "training.batch_size=2", "train", "sft", "--data", str(data),
            "--name", "r2"]
    proc = subprocess.Popen([sys.executable, "-m", "chatkit", *args, "--max-steps", "100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_file = runs.runs_dir(Paths(home)) / "r2" / runs.RUN_FILE
    deadline = time.time() + 240
    while not run_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert run_file.exists() and runs.last_checkpoint(run_file.parent) is None
    r = run_cli(*args, "--resume", "--max-steps", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert "starting it from the beginning" in " ".join(r.stderr.split())
    assert registry.get_adapter(Paths(home), "r2").meta["metrics"]["steps"] == 2


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(stop: signal.Signals, tiny_model_dir: Path, tmp_path: Path) -> None:
    home = Path(os.environ["CHATKIT_HOME"])
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                       {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(8)) + "\n")
    args = [sys.executable, "-m", "chatkit", "--set", f"models.dialogue={tiny_model_dir}", "--set", "training.batch_size=2",
            "train", "sft", "--data", str(data), "--name", "r1"]
    proc = subprocess.Popen([*args, "--max-steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_file = runs.runs_dir(Paths(home)) / "r1" / runs.RUN_FILE
    deadline = time.time() + 240
    while not run_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    ckpt = runs.last_checkpoint(run_file.parent)
    assert ckpt is not None
    step = int(ckpt.name.split("-")[1])
    assert not (Paths(home).adapters / "r1").exists()

    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "--set", "training.batch_size=2", "train", "sft",
                "--data", str(data), "--resume", "--max-steps", str(step + 2), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["steps"] == step + 2 and f"resuming from checkpoint-{step}" in " ".join(r.stderr.split())
    assert registry.get_adapter(Paths(home), "r1").meta["metrics"]["steps"] == step + 2


@pytest.mark.slow
def test_real_model_trains_and_the_adapter_answers(real_home: Path, tmp_path: Path) -> None:
    from chatkit.config import Settings
    from chatkit.generation import GenParams
    from chatkit.generation.hf import HFGenerator
    from chatkit.models import resolve_dialogue
    from tests.conftest import ROOT

    model = resolve_dialogue(Settings(), Paths(real_home).ensure()).path
    data = tmp_path / "gold.jsonl"
    data.write_text("\n".join((ROOT / "corpora" / "conversations" / "train.jsonl").read_text().splitlines()[:8]) + "\n")
    assert run_cli("--set", f"models.dialogue={model}", "train", "validate", str(data)).returncode == 0
    r = run_cli("--set", f"models.dialogue={model}", "--set", "training.batch_size=2", "train", "sft", "--data", str(data),
                "--name", "real", "--max-steps", "3", "--json", timeout=1200)
    assert r.returncode == 0, r.stderr
    info = registry.get_adapter(Paths(Path(os.environ["CHATKIT_HOME"])), "real")
    gen = HFGenerator(model)
    row = read_jsonl(data)[0]["messages"]
    prompt = gen.render(row[:-1])
    answer = gen.tokenizer(row[-1]["content"], add_special_tokens=False)["input_ids"]
    base_nll, _ = gen.answer_nll(prompt, answer)
    gen.load_adapter("real", info.path)
    assert gen.answer_nll(prompt, answer)[0] != base_nll
    assert gen.generate(prompt, GenParams(max_new_tokens=20)).strip()
