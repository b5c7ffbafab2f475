"""GGUF writing (issue 11) without llama.cpp: model and LoRA files checked by reading them back with transformers'
own GGUF loader, the backend choice, `adapters export --gguf`, and bad input as one-line errors. Running the files
is tests/test_llamacpp.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from chatkit.config import Settings
from chatkit.errors import AdapterError, ModelError
from chatkit.generation import gguf_write as gw
from chatkit.generation import loader
from tests.conftest import build_tiny_model, run_cli
from tests.test_training_registry import make_adapter, one_line_error


def read_gguf(path: Path) -> tuple[dict, dict]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.") or k.endswith(("model", "pre"))}
    fields["n_tokens"] = len(reader.fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in reader.fields else 0
    return fields, {t.name: t for t in reader.tensors}


def hf_state(folder: Path) -> dict[str, np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def read_back(path: Path) -> dict[str, np.ndarray]:
    """The GGUF's weights as transformers' own GGUF loader reads them (dequantized, q/k rows back in HF order):
    a reader of llama.cpp's layout written independently of gguf_write.py."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def write_tiny(folder: Path, out: Path, quant: str = "f32") -> Path:
    cfg = gw.read_config(folder)
    gw.write_model(out, gw.model_tensors(hf_state(folder).items(), cfg), gw.metadata_from_hf(folder, cfg, "tiny"), quant)
    return out


def test_tiny_model_gguf_reads_back_as_the_source_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = gw.read_config(tiny_model_dir)
    state = hf_state(tiny_model_dir)
    out = write_tiny(tiny_model_dir, tmp_path / "tiny.gguf")
    fields, tensors = read_gguf(out)
    assert fields["general.architecture"] == "llama" and fields["general.type"] == "model"
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["n_tokens"] == cfg["vocab_size"] and "<|im_start|>" in fields["tokenizer.chat_template"]
    assert fields["llama.block_count"] == 4 and fields["llama.attention.head_count_kv"] == 2
    assert "output.weight" not in tensors, "a tied lm_head is the embedding in llama.cpp"
    back = read_back(out)
    assert sorted(back) == sorted(state)
    different = [name for name in state if not np.array_equal(back[name], state[name])]
    assert not different, f"f32 weights must come back bit-exact: {different[:5]}"


@pytest.mark.parametrize(("quant", "file_type", "size_vs_f32", "error_vs_max"),
                         [("f16", "MOSTLY_F16", 0.55, 1e-3), ("q8_0", "MOSTLY_Q8_0", 0.35, 0.01), ("q4_0", "MOSTLY_Q4_0", 0.2, 0.15)])
def test_quantized_files_are_smaller_and_read_back_close(tiny_model_dir: Path, tmp_path: Path, quant: str, file_type: str,
                                                         size_vs_f32: float, error_vs_max: float) -> None:
    import gguf

    state = hf_state(tiny_model_dir)
    out = write_tiny(tiny_model_dir, tmp_path / f"tiny-{quant}.gguf", quant)
    f32_size = write_tiny(tiny_model_dir, tmp_path / "tiny-f32.gguf").stat().st_size
    fields, tensors = read_gguf(out)
    assert fields["general.file_type"] == gguf.LlamaFileType[file_type]
    assert out.stat().st_size < size_vs_f32 * f32_size
    # llama.cpp reads 1-D tensors (norms) only as F32.
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values() if len(t.shape) == 1)
    back = read_back(out)
    for name, want in state.items():
        error = float(np.abs(back[name] - want).max())
        assert error <= error_vs_max * float(np.abs(want).max()), (name, error)


def test_lora_gguf_matches_the_peft_update(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The base GGUF plus the LoRA GGUF's update, scaled as llama.cpp scales it (alpha / rank), read back by
    transformers, equals PEFT's merged model."""
    import gguf
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = make_adapter("a", tiny_model_dir, b_std=0.05)
    cfg = gw.read_config(tiny_model_dir)
    base = gguf.GGUFReader(str(write_tiny(tiny_model_dir, tmp_path / "base.gguf")))
    gw.write_lora(path, cfg, tmp_path / "a.gguf")
    fields, lora = read_gguf(tmp_path / "a.gguf")
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert sorted(lora) == sorted(f"blk.{i}.{m}.weight.lora_{ab}" for i in range(4) for m in ("attn_q", "attn_v", "ffn_down")
                                  for ab in "ab")
    merged = []
    for t in base.tensors:
        weight = np.array(t.data, dtype=np.float32)
        if f"{t.name}.lora_a" in lora:
            a, b = (np.asarray(lora[f"{t.name}.lora_{ab}"].data, dtype=np.float32) for ab in "ab")
            a, b = a.reshape(-1, weight.shape[1]), b.reshape(weight.shape[0], -1)
            weight = weight + b @ a * (fields["adapter.lora.alpha"] / a.shape[0])
        merged.append((t.name, weight))
    out = tmp_path / "merged.gguf"
    gw.write_model(out, merged, gw.metadata_from_hf(tiny_model_dir, cfg, "merged"), "f32")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32), str(path))
    want = {k: v.detach().numpy() for k, v in peft.merge_and_unload().state_dict().items()}
    back = read_back(out)
    assert not np.allclose(want["model.layers.1.self_attn.q_proj.weight"], hf_state(tiny_model_dir)["model.layers.1.self_attn.q_proj.weight"])
    assert all(np.allclose(back[name], want[name], atol=1e-6) for name in want), "the LoRA GGUF is not PEFT's update"


def test_lora_cache_is_per_adapter_content(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = make_adapter("a", tiny_model_dir)
    first = gw.ensure_lora_gguf(path, tiny_model_dir, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert gw.ensure_lora_gguf(path, tiny_model_dir, tmp_path) == first and first.stat().st_mtime_ns == stamp
    other = make_adapter("b", tiny_model_dir, b_std=0.3)
    assert gw.ensure_lora_gguf(other, tiny_model_dir, tmp_path) != first
    assert not [p for p in first.parent.iterdir() if ".tmp-" in p.name]


def test_adapter_for_another_base_is_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    small = build_tiny_model(tmp_path / "small", hidden=128)
    path = make_adapter("small-a", small)
    with pytest.raises(AdapterError, match="made for another base model") as info:
        gw.ensure_lora_gguf(path, tiny_model_dir, tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "cache" / "llamacpp-lora").glob("*.gguf"))


def test_adapters_llama_cpp_cannot_express_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = make_adapter("a", tiny_model_dir)
    config = json.loads((path / "adapter_config.json").read_text())
    config["use_dora"] = True
    (path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="DoRA"):
        gw.ensure_lora_gguf(path, tiny_model_dir, tmp_path)
    (path / "adapter_config.json").write_text(json.dumps({**config, "use_dora": False, "peft_type": "IA3"}))
    with pytest.raises(AdapterError, match="not a PEFT LoRA adapter"):
        gw.ensure_lora_gguf(path, tiny_model_dir, tmp_path)


def test_other_architectures_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from chatkit.training.merge import export_gguf

    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ModelError, match="Llama-architecture models only"):
        export_gguf(str(folder), None, tmp_path / "x.gguf")
    (folder / "config.json").write_text(json.dumps({**cfg, "rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4}}))
    with pytest.raises(ModelError, match="rope scaling"):
        export_gguf(str(folder), None, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_backend_choice(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    settings.generation.backend = "hf"
    assert loader.choose_backend(settings).backend == "hf"
    settings.generation.backend = "auto"
    settings.models.dialogue = str(tiny_model_dir)
    monkeypatch.setattr(loader, "llamacpp_installed", lambda: False)
    assert loader.choose_backend(settings).reason == "auto: llama-cpp-python is not installed"
    settings.generation.backend = "llamacpp"
    with pytest.raises(ModelError, match="not installed"):
        loader.choose_backend(settings)
    monkeypatch.setattr(loader, "llamacpp_installed", lambda: True)
    with pytest.raises(ModelError, match="has no GGUF file"):
        loader.choose_backend(settings)
    settings.generation.backend = "auto"
    assert loader.choose_backend(settings).backend == "hf"
    folder = tmp_path / "with-gguf"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"GGUF")
    settings.models.dialogue = str(folder)
    choice = loader.choose_backend(settings)
    assert choice.backend == "llamacpp" and choice.gguf == folder / "model.gguf"
    settings.models.dialogue = "packaged:SmolLM2-135M-Instruct"
    assert loader.choose_backend(settings).gguf == loader.find_gguf(settings) and loader.find_gguf(settings) is not None


def test_doctor_shows_the_backend() -> None:
    r = run_cli("--set", "generation.backend=hf", "doctor", "--skip-models", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["generation backend"]["detail"] == "hf (generation.backend is hf)"


def test_export_gguf_cli(tiny_model_dir: Path, tmp_path: Path) -> None:
    make_adapter("a", tiny_model_dir, b_std=0.05)
    out = tmp_path / "a.gguf"
    model_set = ["--set", f"models.dialogue={tiny_model_dir}"]
    r = run_cli(*model_set, "adapters", "export", "a", "--gguf", str(out), "--quant", "f16")
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())  # ctx.say writes progress and results to stderr
    assert f"-> {out} (f16" in said
    if loader.llamacpp_installed():
        found = re.search(r"llama.cpp agrees with the merged model on ([\d.]+)% of (\d+) next tokens", said)
        assert found and float(found[1]) >= 98 and int(found[2]) >= 200, said
    else:
        assert "not run through llama.cpp" in said
    fields, tensors = read_gguf(out)
    assert fields["general.file_type"] == 1 and fields["tokenizer.chat_template"]
    assert not any(name.endswith((".lora_a", ".lora_b")) for name in tensors), "merged: no adapter tensors"
    one_line_error(run_cli(*model_set, "adapters", "export", "a", "--gguf", str(out)), "already exists")
    one_line_error(run_cli(*model_set, "adapters", "export", "nope", "--gguf", str(tmp_path / "b.gguf")), "nope")
    r = run_cli(*model_set, "adapters", "export", "a", "--gguf", str(tmp_path / "c.gguf"), "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "not allowed with" in r.stderr
