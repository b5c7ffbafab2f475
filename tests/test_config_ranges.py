"""Every config value and every numeric flag has a declared range, checked once, refused in one line."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest

from chatkit.cli import main
from chatkit.config import Settings, field_specs, load_settings, validate
from chatkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# (override, what the error must name): the values a careless user (or the issue-20 probe) passed.
BAD_VALUES = [
    ("retrieval.dense_weight=2", "0 <= dense_weight <= 1"),
    ("retrieval.dense_weight=-1", "0 <= dense_weight <= 1"),
    ("retrieval.candidates=0", "1 <= candidates"),
    ("retrieval.hnsw_ef_search=0", "1 <= hnsw_ef_search"),
    ("retrieval.batch_size=0", "1 <= batch_size"),
    ("retrieval.k=0", "1 <= k"),
    ("retrieval.chunk_tokens=8", "16 <= chunk_tokens"),
    ("retrieval.chunk_overlap=256", "chunk_overlap < retrieval.chunk_tokens=256"),
    ("generation.max_new_tokens=0", "1 <= max_new_tokens"),
    ("generation.max_new_tokens=-5", "1 <= max_new_tokens"),
    ("generation.max_new_tokens=4096", "max_new_tokens < generation.context_tokens=2048"),
    ("generation.temperature=-1", "temperature = 0 or 0.01 <= temperature <= 100"),
    # Tiny positive values overflow logits / temperature (or logits / penalty) to inf, and sampling to NaN.
    ("generation.temperature=1e-310", "temperature = 0 or 0.01 <= temperature"),
    ("generation.repetition_penalty=1e-300", "0.01 <= repetition_penalty <= 100"),
    ("generation.temperature=.inf", "not a finite number"),
    ("generation.temperature=inf", "not a finite number"),
    ("generation.temperature=.nan", "not a finite number"),
    ("generation.top_p=2", "0 < top_p <= 1"),
    ("generation.top_p=0", "0 < top_p <= 1"),
    ("generation.repetition_penalty=0", "0.01 <= repetition_penalty"),
    ("generation.context_tokens=0", "16 <= context_tokens"),
    ("generation.copy_bias=-1", "0 <= copy_bias <= 20"),
    ("generation.copy_bias=21", "0 <= copy_bias <= 20"),
    ("generation.copy_bias=nan", "not a finite number"),
    ("generation.seed=-1", "0 <= seed"),
    ("engine.passages=0", "1 <= passages"),
    ("engine.passages=-3", "1 <= passages"),
    ("engine.evidence_sentences=-1", "0 <= evidence_sentences"),
    ("engine.abstain_threshold=2", "-1 <= abstain_threshold <= 1"),
    ("engine.min_question_coverage=1.5", "0 <= min_question_coverage <= 1"),
    ("training.lora_r=0", "1 <= lora_r"),
    ("training.lora_r=-4", "1 <= lora_r"),
    ("training.lora_dropout=1.5", "0 <= lora_dropout < 1"),
    ("training.epochs=0", "0 < epochs"),
    ("training.batch_size=0", "1 <= batch_size"),
    ("training.grad_accum=0", "1 <= grad_accum"),
    ("training.val_fraction=2", "0 <= val_fraction < 1"),
    ("training.learning_rate=-1", "0 < learning_rate <= 1"),
    ("training.learning_rate=0", "0 < learning_rate <= 1"),
    ("training.warmup_ratio=1.5", "0 <= warmup_ratio <= 1"),
    ("training.seed=4294967296", "0 <= seed <= 4294967295"),
    ("models.threads=-1", "0 <= threads"),
    ("server.port=0", "1 <= port <= 65535"),
    ("server.max_body_bytes=10", "1024 <= max_body_bytes"),
    ("retrieval.mode=fuzzy", "one of dense, bm25, hybrid"),
    ("retrieval.mode=a\nb" + "c" * 10_000, "one of dense, bm25, hybrid"),
    ("models.dtype=FLOAT32", "one of auto, float32, bfloat16"),
]


@pytest.mark.parametrize(("override", "allowed"), BAD_VALUES)
def test_each_bad_value_is_refused_naming_key_value_and_range(override: str, allowed: str) -> None:
    key, value = override.split("=", 1)
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=[override])
    message = err.value.message
    assert "\n" not in message and "\n" not in err.value.hint and len(message) < 200
    assert message.startswith(f"{key}=") and "(allowed: " in message and allowed in message, message
    if value.lstrip("-").isdigit():
        assert message.startswith(f"{key}={value} ")


def test_the_message_reads_as_the_issue_asks() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=["generation.top_p=2"])
    assert err.value.message == "generation.top_p=2 is out of range (allowed: 0 < top_p <= 1)"


def test_a_bad_value_in_a_file_is_refused_and_a_later_set_can_fix_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generation:\n  top_p: 0\n  temperature: 0.7\n")
    with pytest.raises(ConfigError, match=r"generation\.top_p=0 is out of range"):
        load_settings([cfg])
    assert load_settings([cfg], ["generation.top_p=0.9"]).generation.top_p == 0.9


def test_home_config_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("training:\n  lora_dropout: 1.5\n")
    with pytest.raises(ConfigError, match="training.lora_dropout=1.5"):
        load_settings(home=tmp_path)


@pytest.mark.parametrize("override", ["retrieval.k=1" + "0" * 400, "retrieval.k=" + "9" * 5000, "generation.seed=2020-13-45",
                                      "retrieval.k=" + "[" * 1200], ids=["10**400", "5000 digits", "impossible date", "deep nesting"])
def test_huge_or_odd_values_are_one_short_line(override: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=[override])
    assert err.value.message.startswith(("retrieval.k=", "config key")) and len(err.value.message) < 200


def test_floats_are_read_in_exponent_form() -> None:
    # PyYAML reads 1e-4 (no dot) as a string; it is still a number to a user.
    assert load_settings(overrides=["training.learning_rate=1e-4"]).training.learning_rate == 1e-4


def _numeric(tp: typing.Any) -> bool:
    return tp in (int, float, "int", "float")


def test_every_numeric_key_declares_a_range_and_every_default_is_inside_it() -> None:
    specs = field_specs()
    numeric = {key: spec for key, spec in specs.items() if _numeric(spec.type)}
    assert len(numeric) > 30  # the walk sees the real fields
    unbounded = [key for key, spec in numeric.items() if "bounds" not in spec.metadata]
    assert not unbounded, f"numeric config keys without ge/gt/le/lt: {unbounded}"
    for key, spec in numeric.items():
        assert spec.metadata["bounds"].admits(spec.default), f"{key}'s default {spec.default} is outside its range"
    for key, spec in specs.items():
        if "choices" in spec.metadata:
            assert spec.default in spec.metadata["choices"], key


def test_every_bound_rejects_nan_and_infinity() -> None:
    for key, spec in field_specs().items():
        if _numeric(spec.type):
            bounds = spec.metadata["bounds"]
            assert not any(bounds.admits(v) for v in (math.nan, math.inf, -math.inf)), key


def test_shipped_defaults_and_every_config_file_pass() -> None:
    validate(Settings())
    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert {f.name for f in files} >= {"default.yaml", "sft-cpu.yaml", "qlora-gpu.yaml"}
    for path in files:
        load_settings([path])


# --- bad config files: one line, not a traceback ---------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a UTF-8 text file"),
    (b"retrieval:\n  k: \xff\n", "not a UTF-8 text file"),
    (b"\x00\x01\x02 binary", "not valid YAML"),
    (b"- a\n- b\n", "top level must be a mapping"),
    (b"just a string", "top level must be a mapping"),
    (b"retrieval: 5\n", "section 'retrieval' must be a mapping"),
    (b"retrieval:\n  k: [1, 2]\n", "config key 'retrieval.k' wants an int"),
    (b"retrieval:\n  k: {a: 1}\n", "config key 'retrieval.k' wants an int"),
    (b"generation:\n  top_p: high\n", "config key 'generation.top_p' wants a float"),
    (b"[" * 1200, "nested too deeply"),
    (b"generation:\n  seed: 2020-13-45\n", "a value is not valid YAML"),
], ids=["png", "latin-1 byte", "control bytes", "a list", "a string", "scalar section", "list value", "mapping value",
        "word for a float", "deep nesting", "impossible date"])
def test_bad_config_files_are_one_line_errors(content: bytes, message: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_settings([cfg])
    assert message in err.value.message and "\n" not in err.value.message


def test_config_dir_says_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings([tmp_path])


# --- the command line -----------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    code = done.value.code
    captured = capsys.readouterr()
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize(("argv", "flag", "allowed"), [
    (["ask", "-k", "-1", "What is LoRA?"], "-k", "1 <= N <= 1000"),
    (["ask", "-k", "x", "What is LoRA?"], "-k", "is not an integer"),
    (["search", "-k", "0", "lora"], "-k", "1 <= N <= 1000"),
    (["chat", "-k", "0"], "-k", "1 <= N"),
    (["train", "sft", "--data", "x.jsonl", "--max-steps", "0"], "--max-steps", "N >= 1"),
    (["train", "sft", "--data", "x.jsonl", "--max-steps", "-1"], "--max-steps", "N >= 1"),
    (["eval", "answers", "--qa", "q.jsonl", "--limit", "0"], "--limit", "N >= 1"),
    (["eval", "retrieval", "--limit", "-2"], "--limit", "N >= 1"),
    (["serve", "--port", "70000"], "--port", "1 <= N <= 65535"),
    (["conversations", "show", "0"], "id", "N >= 1"),
    (["conversations", "rate", "1", "-1", "+1"], "turn", "N >= 0"),
    (["data", "synth", "--n", "0"], "--n", "N >= 1"),
    (["data", "synth", "--val-fraction", "1"], "--val-fraction", "0 <= N < 1"),
    (["data", "synth", "--unanswerable", "nan"], "--unanswerable", "0 <= N <= 1"),
    (["data", "synth", "--evidence-sentences", "-1"], "--evidence-sentences", "0 <= N"),
])
def test_numeric_flags_are_refused_while_parsing(argv: list[str], flag: str, allowed: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument {flag}" in errors[0] and allowed in errors[0], err
    assert "Traceback" not in err


def test_a_bad_set_value_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A collection that does not exist keeps this fast should the check ever be skipped (no corpus is indexed).
    code, _, err = _run(capsys, "--home", str(tmp_path / "h"), "--set", "generation.top_p=0", "--set", "generation.temperature=0.7",
                        "--set", "engine.collections=nosuch", "ask", "--style", "generative", "What is LoRA?")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: generation.top_p=0 is out of range (allowed: 0 < top_p <= 1) (hint: e.g. --set generation.top_p=1)"]


def test_binary_config_file_on_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"\xff\xfe\x00binary")
    code, _, err = _run(capsys, "--home", str(tmp_path / "h"), "--config", str(cfg), "config", "show")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not a UTF-8 text file" in err
    code, _, err = _run(capsys, "--home", str(tmp_path / "h"), "--config", str(tmp_path), "config", "show")
    assert code == 1 and "is a directory" in err and "not found" not in err


def test_bad_batch_size_fails_before_index_add_creates_anything(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# LoRA\n\nLoRA freezes the base model and trains two small matrices.\n")
    home = tmp_path / "h"
    code, _, err = _run(capsys, "--home", str(home), "--set", "retrieval.batch_size=0", "index", "add", str(docs), "-c", "fzbatch0")
    assert code == 1 and "retrieval.batch_size=0 is out of range" in err
    assert not (home / "collections" / "fzbatch0").exists()
    assert not home.exists()  # nothing at all is created under the data dir


def test_config_show_keys_prints_the_allowed_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, "--home", str(tmp_path / "h"), "config", "show", "--keys")
    assert code == 0, err
    assert "generation.top_p = 1.0\n" in out and "    allowed: 0 < top_p <= 1\n" in out
    assert "    allowed: one of dense, bm25, hybrid\n" in out


def test_a_verb_that_never_reads_settings_still_refuses_a_bad_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, _, err = _run(capsys, "--home", str(home), "--set", "training.lora_r=0", "conversations", "ls")
    assert code == 1 and "training.lora_r=0 is out of range" in err
    assert not home.exists()
