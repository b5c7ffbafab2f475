"""Shipped adapters: installed into the registry once, promoted only when their comparison beat base on
the same base model, rollback returns to base, a removed one stays removed; and the shipped tutor folder
itself is a small, valid bf16 PEFT adapter with its log and numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chatkit.models import model_fingerprint
from chatkit.training import registry, shipped
from tests.test_training_registry import home_paths, make_adapter


def shipped_folder(tmp_path: Path, tiny_model_dir: Path, better: bool) -> Path:
    """A shipped-adapters folder holding one adapter 'tutor' with the given comparison result."""
    src = make_adapter("made", tiny_model_dir)
    folder = tmp_path / "adapters"
    shutil.copytree(src, folder / "tutor")
    registry.remove(home_paths(), "made")
    meta_path = folder / "tutor" / registry.META
    meta = json.loads(meta_path.read_text())
    meta["shipped"] = {"better": better, "worse": False, "baseline": "base"}
    meta_path.write_text(json.dumps(meta))
    return folder


def test_installed_once_promoted_when_better_and_rollback_returns_to_base(tmp_path: Path, tiny_model_dir: Path) -> None:
    paths = home_paths()
    folder = shipped_folder(tmp_path, tiny_model_dir, better=True)
    fp = model_fingerprint(str(tiny_model_dir))
    assert shipped.install_shipped(paths, fp, folder) == ["tutor"]
    assert registry.default_adapter(paths) == "tutor"
    assert registry.get_adapter(paths, "tutor").meta["shipped"]["better"] is True
    assert shipped.install_shipped(paths, fp, folder) == []
    assert registry.rollback(paths) == ("tutor", None)
    registry.remove(paths, "tutor")
    assert shipped.install_shipped(paths, fp, folder) == []  # removed by the user: stays removed
    assert not (paths.adapters / "tutor").exists() and registry.default_adapter(paths) is None


@pytest.mark.parametrize("case", ["not better", "other base", "user default"])
def test_not_promoted(case: str, tmp_path: Path, tiny_model_dir: Path) -> None:
    paths = home_paths()
    folder = shipped_folder(tmp_path, tiny_model_dir, better=case != "not better")
    fp = model_fingerprint(str(tiny_model_dir)) if case != "other base" else "0123456789abcdef"
    if case == "user default":
        make_adapter("mine", tiny_model_dir)
        registry.promote(paths, "mine")
    assert shipped.install_shipped(paths, fp, folder) == ["tutor"]
    assert registry.default_adapter(paths) == ("mine" if case == "user default" else None)
    assert not registry.get_adapter(paths, "tutor").problem


TUTOR = shipped.SHIPPED_DIR / "tutor"


@pytest.mark.skipif(not TUTOR.is_dir(), reason="no shipped tutor adapter in this checkout")
def test_the_shipped_tutor_is_a_small_bf16_peft_adapter_with_its_log() -> None:
    info = registry.inspect_adapter(TUTOR)
    assert info.problem == ""
    weights = TUTOR / registry.WEIGHTS
    assert weights.stat().st_size <= 25 * 2**20
    n = int.from_bytes(weights.read_bytes()[:8], "little")
    header = json.loads(weights.read_bytes()[8 : 8 + n])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
    log = json.loads((TUTOR / "training-log.json").read_text())
    assert any("loss" in e for e in log) and any("eval_loss" in e for e in log)
    meta = info.meta
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {"val_perplexity", "train_loss"} <= set(meta["metrics"])
    assert {"better", "worse", "token_f1"} <= set(meta["shipped"])


@pytest.mark.slow
@pytest.mark.skipif(not TUTOR.is_dir(), reason="no shipped tutor adapter in this checkout")
def test_the_shipped_tutor_loads_on_the_packaged_model(real_home: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from chatkit.config import Paths, Settings
    from chatkit.models import resolve_dialogue

    model_dir = resolve_dialogue(Settings(), Paths(real_home).ensure(), print).path
    assert model_fingerprint(model_dir) == json.loads((TUTOR / registry.META).read_text())["base_fingerprint"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), str(TUTOR))
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 1_000_000
