"""The adapter registry: promote (gated by the eval verdict), rollback, rm, and bad input (another base
model, a corrupt folder, --resume with nothing to resume) as one-line errors that change nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chatkit.config import Paths
from chatkit.errors import AdapterError
from chatkit.models import model_fingerprint
from chatkit.training import registry
from tests.conftest import build_tiny_model, run_cli

GOOD_ROW = {"messages": [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Low-rank adapters."}]}


def home_paths() -> Paths:
    return Paths(Path(os.environ["CHATKIT_HOME"])).ensure()


def make_adapter(name: str, base_dir: Path, b_std: float = 0.02) -> Path:
    """A real PEFT LoRA adapter on the tiny model, with non-zero B so it changes the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, b_std)
    meta = {"name": name, "base_model": base_dir.name, "base_path": str(base_dir), "base_fingerprint": model_fingerprint(str(base_dir)),
            "metrics": {"val_loss": 1.5, "val_perplexity": 4.48}, "created": "2025-01-01T00:00:00"}

    def fill(tmp: Path) -> None:
        peft.save_pretrained(str(tmp))
        (tmp / registry.META).write_text(json.dumps(meta))

    return registry.publish(home_paths(), name, fill)


def write_verdict(name: str, better: bool) -> None:
    folder = home_paths().reports / f"compare-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "verdict.json").write_text(json.dumps({"better": better, "token_f1": [0.3, 0.4]}))


def registry_bytes() -> bytes | None:
    path = home_paths().adapters / registry.REGISTRY
    return path.read_bytes() if path.exists() else None


def one_line_error(r: object, contains: str) -> None:
    lines = r.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert r.returncode == 1, r.stderr  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: ") and contains in lines[0], r.stderr  # type: ignore[attr-defined]


@pytest.fixture()
def model_set(tiny_model_dir: Path) -> list[str]:
    return ["--set", f"models.dialogue={tiny_model_dir}"]


def test_promote_is_gated_by_the_eval_verdict_then_rollback(tiny_model_dir: Path, model_set: list[str]) -> None:
    make_adapter("a", tiny_model_dir)
    make_adapter("b", tiny_model_dir)
    one_line_error(run_cli(*model_set, "adapters", "promote", "a"), "no evaluation of 'a'")
    assert registry_bytes() is None
    write_verdict("a", better=False)
    one_line_error(run_cli(*model_set, "adapters", "promote", "a"), "not better")
    assert registry_bytes() is None
    write_verdict("a", better=True)
    assert run_cli(*model_set, "adapters", "promote", "a").returncode == 0
    assert registry.default_adapter(home_paths()) == "a"
    r = run_cli(*model_set, "adapters", "promote", "b", "--force")
    assert r.returncode == 0 and "--force" in r.stderr
    listed = json.loads(run_cli("adapters", "ls", "--json").stdout)
    assert {a["name"]: a["default"] for a in listed} == {"a": False, "b": True}
    one_line_error(run_cli("adapters", "rm", "b"), "is the default")
    assert run_cli("adapters", "rollback").returncode == 0
    assert registry.default_adapter(home_paths()) == "a"
    assert run_cli("adapters", "rollback").returncode == 0
    assert registry.default_adapter(home_paths()) is None
    before = registry_bytes()
    one_line_error(run_cli("adapters", "rollback"), "nothing to roll back")
    assert registry_bytes() == before
    assert run_cli("adapters", "rm", "b").returncode == 0 and not (home_paths().adapters / "b").exists()
    log = json.loads(before or b"{}")["log"]
    assert [e["action"] for e in log] == ["promote", "promote", "rollback", "rollback"]


def test_adapter_for_another_base_model_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = build_tiny_model(tmp_path / "other", layers=2)
    make_adapter("a", tiny_model_dir)
    write_verdict("a", better=True)
    for verb in (["adapters", "promote", "a", "--force"], ["adapters", "export", "a", "--out", str(tmp_path / "m"), "--merged"]):
        r = run_cli("--set", f"models.dialogue={other}", *verb)
        one_line_error(r, "was trained on tiny-llama")
    assert registry_bytes() is None and not (tmp_path / "m").exists()


def test_corrupt_adapter_folder_is_reported_and_refused(tiny_model_dir: Path, model_set: list[str]) -> None:
    path = make_adapter("a", tiny_model_dir)
    weights = path / registry.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-100])
    write_verdict("a", better=True)
    one_line_error(run_cli(*model_set, "adapters", "promote", "a"), "adapter 'a' is corrupt: adapter_model.safetensors is truncated")
    one_line_error(run_cli("adapters", "show", "a"), "is corrupt")
    r = run_cli("adapters", "ls", "--json")
    assert r.returncode == 0 and "truncated" in json.loads(r.stdout)[0]["problem"]
    assert registry_bytes() is None
    (path / registry.META).write_text("{not json")
    assert registry.inspect_adapter(path).problem == "chatkit-adapter.json is missing or unreadable"
    (path / registry.META).write_text("{}")
    (path / registry.PEFT_CONFIG).unlink()
    assert registry.inspect_adapter(path).problem == "adapter_config.json is missing or unreadable"


def test_resume_without_checkpoint_and_existing_name(tiny_model_dir: Path, model_set: list[str], tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n")
    make_adapter("a", tiny_model_dir)
    listing = sorted(p.name for p in home_paths().adapters.iterdir())
    one_line_error(run_cli(*model_set, "train", "sft", "--data", str(data), "--resume"), "no checkpoint to resume")
    one_line_error(run_cli(*model_set, "train", "sft", "--data", str(data), "--resume", "--name", "x"), "no checkpoint to resume for run 'x'")
    one_line_error(run_cli(*model_set, "train", "sft", "--data", str(data), "--name", "a"), "adapter 'a' already exists")
    one_line_error(run_cli(*model_set, "train", "sft", "--data", str(data), "--name", "../evil"), "invalid adapter name")
    assert sorted(p.name for p in home_paths().adapters.iterdir()) == listing and registry_bytes() is None


def test_corrupt_registry_file_is_one_line() -> None:
    paths = home_paths()
    (paths.adapters / registry.REGISTRY).write_text("[1, 2")
    one_line_error(run_cli("adapters", "ls"), "registry.json is corrupt")
    with pytest.raises(AdapterError):
        registry.default_adapter(paths)


def test_unknown_adapter_and_runtime_helpers() -> None:
    paths = home_paths()
    assert registry.default_adapter(paths) is None
    assert registry.adapter_path(paths, "mine") == paths.adapters / "mine"
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        registry.get_adapter(paths, "nope")
    with pytest.raises(AdapterError, match="invalid adapter name"):
        registry.adapter_path(paths, "base")
