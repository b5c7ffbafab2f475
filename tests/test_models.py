from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatkit.config import Paths, Settings, load_settings
from chatkit.errors import ModelError
from chatkit.models import (
    COMPLETE_MARKER,
    ensure_converted,
    packaged_gguf_path,
    resolve_dialogue,
    resolve_embedder,
)


def test_local_model_folder_resolves(tiny_model_dir: Path, tmp_path: Path) -> None:
    s = load_settings(overrides=[f"models.dialogue={tiny_model_dir}"])
    r = resolve_dialogue(s, Paths(tmp_path))
    assert r.path == str(tiny_model_dir.resolve())


def test_local_folder_loads_and_generates(tiny_model_dir: Path, tmp_path: Path) -> None:
    from chatkit.generation import GenParams
    from chatkit.generation.loader import load_generator

    s = load_settings(overrides=[f"models.dialogue={tiny_model_dir}", "models.dtype=float32"])
    gen = load_generator(s, Paths(tmp_path).ensure())
    ids = gen.render([{"role": "user", "content": "What is LoRA?"}])
    assert ids[-3:] == gen.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"][-3:]
    out = gen.generate(ids, GenParams(max_new_tokens=4, repetition_penalty=1.0))
    assert isinstance(out, str)


def test_missing_folder_and_offline_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_dialogue(load_settings(overrides=[f"models.dialogue={tmp_path}/nope"]), Paths(tmp_path))
    with pytest.raises(ModelError, match="offline mode is on"):
        resolve_dialogue(load_settings(overrides=["models.dialogue=HuggingFaceTB/SmolLM2-360M"]), Paths(tmp_path))
    online = load_settings(overrides=["models.dialogue=HuggingFaceTB/SmolLM2-360M", "models.allow_online=true"])
    assert resolve_dialogue(online, Paths(tmp_path)).path == "HuggingFaceTB/SmolLM2-360M"


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_embedder(load_settings(overrides=[f"models.embedder={tmp_path / 'empty'}"]))


def test_unknown_packaged_name() -> None:
    with pytest.raises(ModelError, match="unknown packaged"):
        resolve_embedder(load_settings(overrides=["models.embedder=packaged:bert"]))


def test_packaged_embedder_resolves() -> None:
    r = resolve_embedder(Settings())
    assert os.path.isdir(r.path)


def test_interrupted_conversion_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conversion that dies midway leaves no folder that passes for a finished one."""
    import chatkit.models as models

    target = tmp_path / "models" / "m"

    def dies(gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", dies)
    fake_gguf = tmp_path / "x.gguf"
    fake_gguf.write_bytes(b"GGUF")
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(fake_gguf, target)
    assert not target.exists()
    assert not list(target.parent.glob(".m.tmp-*"))
    # A stale unmarked folder (e.g. from a killed process) is replaced, not trusted.
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")

    def works(gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(models, "_convert_gguf", works)
    ensure_converted(fake_gguf, target)
    assert (target / COMPLETE_MARKER).is_file() and not (target / "config.json").exists()


def test_corrupt_gguf_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file")
    with pytest.raises(ModelError, match="cannot read GGUF"):
        ensure_converted(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_packaged_dialogue_converts_and_loads(real_home: Path) -> None:
    from chatkit.generation import GenParams
    from chatkit.generation.loader import load_generator

    assert packaged_gguf_path().is_file()
    gen = load_generator(Settings(), Paths(real_home).ensure())
    assert (real_home / "models" / "SmolLM2-135M-Instruct" / COMPLETE_MARKER).is_file()
    text = gen.generate(gen.render([{"role": "user", "content": "What is 2+2?"}]), GenParams(max_new_tokens=8))
    assert text.strip()


# --- adapters name their base portably -------------------------------------------------------------


def json_strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [value] if isinstance(value, str) else []


def test_shipped_adapters_carry_no_machine_path() -> None:
    import json

    from chatkit.training.shipped import SHIPPED_DIR

    folders = [p for p in sorted(SHIPPED_DIR.iterdir()) if p.is_dir()]
    assert folders, "no shipped adapter found"
    for folder in folders:
        config = json.loads((folder / "adapter_config.json").read_text())
        meta = json.loads((folder / "chatkit-adapter.json").read_text())
        assert config["base_model_name_or_path"] == meta["base_model"], folder.name
        paths = [s for s in json_strings(config) + json_strings(meta) if os.path.isabs(s) or s.startswith("~")]
        assert not paths, f"{folder.name} names machine paths: {paths}"


def test_saved_adapter_names_its_base_by_id_and_loads_onto_the_model_in_hand(tiny_model_dir: Path, tmp_path: Path) -> None:
    """PEFT writes the base's local folder; chatkit replaces it by the model id, and loading never reads it."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from chatkit.generation.hf import HFGenerator
    from chatkit.training.portable import write_portable_base_name

    gen = HFGenerator(str(tiny_model_dir), dtype="float32")
    torch.manual_seed(1)
    peft = get_peft_model(gen.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    folder = tmp_path / "adapter"
    peft.save_pretrained(str(folder))
    config_file = folder / "adapter_config.json"
    assert json.loads(config_file.read_text())["base_model_name_or_path"] == str(tiny_model_dir)

    write_portable_base_name(folder, "HuggingFaceTB/SmolLM2-135M-Instruct")
    config = json.loads(config_file.read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert config["r"] == 4 and config["target_modules"]  # the rest of PEFT's config is kept

    fresh = HFGenerator(str(tiny_model_dir), dtype="float32")  # offline (conftest): a hub id could not load
    ids = torch.tensor([fresh.render([{"role": "user", "content": "What is LoRA?"}])])
    with torch.no_grad():
        base_logits = fresh.model(ids).logits
        fresh.load_adapter("portable", folder)
        tuned_logits = fresh.model(ids).logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-4), "the adapter did not load onto the model"
