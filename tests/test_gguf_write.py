"""GGUF writing (issue 11) without llama.cpp: model and LoRA files in llama.cpp's layout, the backend choice,
`adapters export --gguf`, and bad input as one-line errors. Running the files is tests/test_llamacpp.py."""

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


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_tiny_model_gguf_has_llama_layout_and_metadata(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = gw.read_config(tiny_model_dir)
    state = hf_state(tiny_model_dir)
    out = tmp_path / "tiny.gguf"
    gw.write_model(out, gw.model_tensors(state.items(), cfg), gw.metadata_from_hf(tiny_model_dir, cfg, "tiny"), "f32")
    fields, tensors = read_gguf(out)
    assert fields["general.architecture"] == "llama" and fields["general.type"] == "model"
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["n_tokens"] == cfg["vocab_size"] and "<|im_start|>" in fields["tokenizer.chat_template"]
    assert fields["llama.block_count"] == 4 and fields["llama.attention.head_count_kv"] == 2
    assert "output.weight" not in tensors, "a tied lm_head is the embedding in llama.cpp"
    assert len(tensors) == 1 + 1 + 9 * 4
    n_head, n_kv = gw.heads(cfg)
    q = np.asarray(tensors["blk.0.attn_q.weight"].data).reshape(state["model.layers.0.self_attn.q_proj.weight"].shape)
    k = np.asarray(tensors["blk.0.attn_k.weight"].data).reshape(state["model.layers.0.self_attn.k_proj.weight"].shape)
    assert np.array_equal(unpermute(q, n_head), state["model.layers.0.self_attn.q_proj.weight"])
    assert np.array_equal(unpermute(k, n_kv), state["model.layers.0.self_attn.k_proj.weight"])
    assert not np.array_equal(q, state["model.layers.0.self_attn.q_proj.weight"]), "q rows must be permuted"


@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_0"])
def test_quantized_types(tiny_model_dir: Path, tmp_path: Path, quant: str) -> None:
    import gguf

    cfg = gw.read_config(tiny_model_dir)
    out = tmp_path / f"tiny-{quant}.gguf"
    gw.write_model(out, gw.model_tensors(hf_state(tiny_model_dir).items(), cfg), gw.metadata_from_hf(tiny_model_dir, cfg, "t"), quant)
    fields, tensors = read_gguf(out)
    assert fields["general.file_type"] == gw.file_type(quant)
    Q = gguf.GGMLQuantizationType
    assert tensors["blk.0.attn_norm.weight"].tensor_type == Q.F32
    body = {"f16": Q.F16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[quant]
    assert tensors["blk.0.ffn_up.weight"].tensor_type == body
    head = {"f16": Q.F16, "q8_0": Q.F16, "q4_0": Q.Q8_0}[quant]
    assert tensors["token_embd.weight"].tensor_type == head


def test_lora_gguf_matches_the_peft_update(tiny_model_dir: Path, tmp_path: Path) -> None:
    """B.A scaled as llama.cpp scales it (alpha / rank) equals PEFT's update, with q/k rows permuted."""
    from safetensors.numpy import load_file

    path = make_adapter("a", tiny_model_dir, b_std=0.05)
    peft = json.loads((path / "adapter_config.json").read_text())
    cfg = gw.read_config(tiny_model_dir)
    out = tmp_path / "a.gguf"
    gw.write_lora(path, cfg, out)
    fields, tensors = read_gguf(out)
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(peft["lora_alpha"])
    assert sorted(tensors) == sorted(f"blk.{i}.{m}.weight.lora_{ab}" for i in range(4) for m in ("attn_q", "attn_v", "ffn_down")
                                     for ab in "ab")
    weights = load_file(str(path / "adapter_model.safetensors"))
    prefix = "base_model.model.model.layers.1.self_attn.q_proj"
    a, b = weights[f"{prefix}.lora_A.weight"], weights[f"{prefix}.lora_B.weight"]
    peft_delta = b @ a * (peft["lora_alpha"] / peft["r"])
    ga = np.asarray(tensors["blk.1.attn_q.weight.lora_a"].data).reshape(a.shape)
    gb = np.asarray(tensors["blk.1.attn_q.weight.lora_b"].data).reshape(b.shape)
    rank = ga.shape[0]
    assert np.allclose(unpermute(gb @ ga * (fields["adapter.lora.alpha"] / rank), gw.heads(cfg)[0]), peft_delta, atol=1e-6)


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
