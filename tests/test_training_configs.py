"""The shipped training configs, the TrainingConfig -> SFTConfig mapping, the accelerate entry point,
and the QLoRA path on a CUDA GPU (skipped without one)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatkit.config import TrainingConfig, load_settings
from chatkit.errors import ConfigError
from tests.conftest import ROOT, run_cli


def test_shipped_configs_load_and_say_what_the_issue_asks() -> None:
    cpu = load_settings([ROOT / "configs" / "sft-cpu.yaml"]).training
    assert cpu.gradient_checkpointing == "auto" and cpu.bf16 == "auto" and cpu.quantization == "none"
    gpu = load_settings([ROOT / "configs" / "qlora-gpu.yaml"]).training
    assert gpu.quantization == "nf4" and gpu.bf16 == "true" and gpu.gradient_checkpointing == "true" and gpu.optim == "paged_adamw_8bit"
    ddp = yaml.safe_load((ROOT / "configs" / "accelerate" / "ddp.yaml").read_text())
    zero2 = yaml.safe_load((ROOT / "configs" / "accelerate" / "deepspeed-zero2.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and zero2["deepspeed_config"]["zero_stage"] == 2


def test_sft_config_follows_the_training_config(tmp_path: Path) -> None:
    from chatkit.training.build import sft_config, use_bf16

    cfg = TrainingConfig(bf16="false", epochs=3.0, batch_size=2, max_length=256)
    assert use_bf16(cfg, None) is False
    args = sft_config(cfg, tmp_path, has_eval=True, bf16=False, max_steps=None)
    # TRL turns both on by default; a CPU run must not get them unasked.
    assert args.bf16 is False and args.gradient_checkpointing is False
    assert args.eval_strategy == "epoch" and args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.max_length == 256 and args.num_train_epochs == 3.0 and args.per_device_train_batch_size == 2
    plain = sft_config(cfg, tmp_path, has_eval=False, bf16=False, max_steps=5)
    assert plain.eval_strategy == "no" and plain.max_steps == 5 and not plain.load_best_model_at_end


def test_nf4_without_cuda_is_a_config_error(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    from chatkit.training.build import load_base_model

    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        load_base_model(str(tiny_model_dir), TrainingConfig(quantization="nf4"), bf16=False)


def test_unknown_target_module_is_a_config_error(tiny_model_dir: Path) -> None:
    from chatkit.training.build import load_base_model

    with pytest.raises(ConfigError) as info:
        load_base_model(str(tiny_model_dir), TrainingConfig(target_modules=["q_proj", "qkv"]), bf16=False)
    assert "['qkv'] are not in this model" in info.value.message and "q_proj" in info.value.hint


def launched_commands() -> set[tuple[str, ...]]:
    """What `accelerate launch ... -m MODULE VERB SUBVERB` runs, in every config and doc that shows it."""
    files = [*(ROOT / "configs").rglob("*.yaml"), ROOT / "docs" / "training.md"]
    lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines() if "accelerate launch" in line]
    assert lines, "no `accelerate launch` command documented"
    found = [re.search(r" -m (\S+) (\S+) (\S+)", line) for line in lines]
    assert all(found), lines
    return {m.groups() for m in found if m}


def test_accelerate_entry_point_bad_input_is_one_line(tmp_path: Path) -> None:
    # Multi-GPU training runs the one CLI under accelerate: the module the docs name must exist and
    # answer bad input like any verb.
    assert launched_commands() == {("chatkit", "train", "sft")}
    module, *verb = next(iter(launched_commands()))
    r = subprocess.run([sys.executable, "-m", module, *verb, "--data", str(tmp_path / "missing.jsonl")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().startswith("error: training file not found") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


@pytest.mark.gpu
def test_qlora_gpu_config_trains_on_cuda(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                       {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(32)) + "\n")
    r = run_cli("--config", str(ROOT / "configs" / "qlora-gpu.yaml"), "--set", f"models.dialogue={tiny_model_dir}",
                "train", "sft", "--data", str(data), "--name", "gpu", "--max-steps", "20", "--json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)["metrics"]
    print(f"qlora tiny model: {metrics['steps'] / metrics['train_seconds']:.2f} steps/s, {metrics['tokens_per_s']:.0f} tokens/s")
    assert metrics["steps"] == 20


def test_malloc_arena_cap_applies_in_a_fresh_process() -> None:
    code = ("from chatkit.training.memory import limit_malloc_arenas as f; "
            "print(f(0), f(1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert out == ["False", "True" if sys.platform.startswith("linux") else "False"]


def test_auto_checkpointing_follows_the_longest_row() -> None:
    from chatkit.config import CHECKPOINT_ABOVE_TOKENS
    from chatkit.training.build import checkpointing
    from chatkit.training.sft import resolve_checkpointing

    auto = TrainingConfig()
    assert auto.gradient_checkpointing == "auto" and not checkpointing(auto)
    assert resolve_checkpointing(auto, CHECKPOINT_ABOVE_TOKENS).gradient_checkpointing == "false"
    assert checkpointing(resolve_checkpointing(auto, CHECKPOINT_ABOVE_TOKENS + 1))
    forced = TrainingConfig(gradient_checkpointing="false")
    assert resolve_checkpointing(forced, 100_000) is forced
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        load_settings(overrides=["training.gradient_checkpointing=maybe"])
