from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TRAIN_TEXT = [
    "LoRA freezes the pre-trained weights and learns two small low-rank matrices.",
    "QLoRA quantizes the frozen base model to 4-bit NF4 and trains LoRA adapters on top.",
    "FAISS stores dense vectors and finds nearest neighbours quickly.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "The transformer uses self-attention, multi-head attention and positional encodings.",
    "Perplexity is the exponential of the average negative log-likelihood per token.",
    "The documents don't cover this. Passages: Question: Answer: [1] [2] [3]",
] * 20


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHATKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")


def build_tiny_model(out: Path, chat_template: str = CHATML, layers: int = 4, hidden: int = 256) -> Path:
    """A real, randomly initialised Llama with a BPE tokenizer trained here: fast and offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAIN_TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")
    fast.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    fast.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def real_home() -> Path:
    """A data dir that persists across runs so the packaged model is converted once per clone."""
    home = ROOT / ".test-home"
    home.mkdir(exist_ok=True)
    return home


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "chatkit", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, input=input)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- suites that `make test` must run ------------------------------------------------------------
# A suite whose dependency is missing skips itself (importorskip); under `make test`
# (CHATKIT_REQUIRE_SUITES=1) that is a failure instead, because a green run would hide that the
# llama.cpp backend or the API fuzzing was never tested. CHATKIT_ALLOW_SKIP=1, which CI never sets,
# lets a developer without the llama.cpp build run everything else.

REQUIRED_SUITES = {  # test file -> the imports it needs
    "tests/test_llamacpp.py": ("llama_cpp",),
    "tests/test_server.py": ("fastapi", "openai", "schemathesis"),  # schemathesis: the OpenAPI fuzz test
}
_collected_files: set[str] = set()


def missing_suites(files: Collection[str] = tuple(REQUIRED_SUITES)) -> dict[str, str]:
    """Each required suite (of `files`) that cannot run, with the import that fails."""
    import importlib

    missing = {}
    for file, modules in REQUIRED_SUITES.items():
        if file not in files:
            continue
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # an installed but broken build (e.g. a bad shared library) counts too
                missing[file] = f"import {module}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                break
    return missing


def suites_must_run() -> bool:
    return os.environ.get("CHATKIT_REQUIRE_SUITES") == "1" and os.environ.get("CHATKIT_ALLOW_SKIP") != "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not suites_must_run():
        return
    missing = missing_suites()
    if missing:
        reasons = "; ".join(f"{file}: {why}" for file, why in missing.items())
        pytest.exit(f"required test suites cannot run: {reasons}. Install them (`make setup` with "
                    f"CHATKIT_LLAMACPP=1), or set CHATKIT_ALLOW_SKIP=1 to run without them", returncode=1)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _collected_files.add(report.nodeid.split("::")[0])


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: the line comes after pytest's own summary
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """One line naming every test file that skipped as a whole or lacks a required part, so a green run
    cannot hide one."""
    yield
    skipped: dict[str, str] = {}
    tests_skipped: dict[str, set[str]] = {}  # file -> reasons of its single skipped tests
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
        if isinstance(report, pytest.CollectReport):
            skipped[report.nodeid] = reason
        else:
            tests_skipped.setdefault(report.nodeid.split("::")[0], set()).add(reason)
    for file, reasons in tests_skipped.items():
        skipped.setdefault(file, "some tests: " + "; ".join(sorted(reasons)))
    for file, why in missing_suites(_collected_files - set(skipped)).items():
        skipped[file] = why
    line = ", ".join(f"{file} ({why})" for file, why in skipped.items()) or "none"
    terminalreporter.write_line(f"skipped suites: {line}")
