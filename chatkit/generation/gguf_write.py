"""Write GGUF files llama.cpp loads: whole Llama models (merged exports) and LoRA adapters.

Conventions follow llama.cpp's own converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py):
tensor names from gguf-py's Llama tensor map (`blk.N.attn_q.weight`, ...), q_proj/k_proj rows permuted
from the Hugging Face rotary layout into llama.cpp's, 1-D tensors kept in F32. A LoRA adapter is a GGUF
with `general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha` and `<name>.lora_a` / `.lora_b`
tensors (A: rank x in, B: out x rank, as PEFT stores them); B of q/k gets the same row permutation as
the weight it adds to. llama.cpp scales B(Ax) by alpha / rank per tensor, so a PEFT scale that is not
lora_alpha / r (rsLoRA, rank or alpha patterns) is folded into B.

Only numpy and gguf-py at import time; torch/safetensors are imported where adapters are read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, ModelError

QUANTS = ("f32", "f16", "q8_0", "q4_0")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CONVERTER_VERSION = "1"  # bump when the LoRA GGUF layout changes: cached conversions are then redone
_SKIP_SOURCE_KEYS = ("GGUF.", "general.file_type", "general.quantization_version", "general.architecture")


@dataclass(frozen=True)
class KV:
    key: str
    value: Any
    vtype: Any  # gguf.GGUFValueType
    sub_type: Any = None


# --- Llama hyperparameters ----------------------------------------------------------------------


def read_config(folder: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{folder} has no readable config.json", "point models.dialogue at a Hugging Face model folder") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{folder}/config.json is not a JSON object", "point models.dialogue at a Hugging Face model folder")
    return cfg


def check_llama(cfg: dict[str, Any], what: str) -> None:
    """Refuse what these writers do not handle, in one line."""
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") != "llama" or "LlamaForCausalLM" not in archs:
        raise ModelError(f"{what} is a {cfg.get('model_type') or '?'} model ({', '.join(archs) or 'no architecture'}); "
                         "GGUF writing supports Llama-architecture models only",
                         "export with --merged and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type not in (None, "default"):
        raise ModelError(f"{what} uses {rope_type} rope scaling, which this GGUF writer does not handle",
                         "export with --merged and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise ModelError(f"{what} has attention or MLP biases, which this GGUF writer does not handle",
                         "export with --merged and convert the folder with llama.cpp's convert_hf_to_gguf.py")


def heads(cfg: dict[str, Any]) -> tuple[int, int]:
    n_head = int(cfg["num_attention_heads"])
    return n_head, int(cfg.get("num_key_value_heads") or n_head)


def head_dim(cfg: dict[str, Any]) -> int:
    return int(cfg.get("head_dim") or int(cfg["hidden_size"]) // int(cfg["num_attention_heads"]))


def rope_theta(cfg: dict[str, Any]) -> float:
    rope = cfg.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(cfg.get("rope_theta", 10000.0))


def permute_qk(w: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """Hugging Face's rotary row order -> llama.cpp's (convert_hf_to_gguf.py LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensor_map(n_blocks: int) -> Any:
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)


def gguf_name(tmap: Any, hf_name: str) -> str:
    name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise ModelError(f"no llama.cpp tensor for '{hf_name}'", "only plain Llama models can be written as GGUF")
    return str(name)


# --- whole models ---------------------------------------------------------------------------------


def model_tensors(items: Iterable[tuple[str, Any]], cfg: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(HF name, float32 numpy array) -> (GGUF name, array in llama.cpp layout); tied lm_head dropped."""
    n_head, n_kv = heads(cfg)
    tmap = _tensor_map(int(cfg["num_hidden_layers"]))
    tied = bool(cfg.get("tie_word_embeddings", False))
    for hf, arr in items:
        if hf.endswith("rotary_emb.inv_freq") or (tied and hf == "lm_head.weight"):
            continue
        if hf.endswith("self_attn.q_proj.weight"):
            arr = permute_qk(arr, n_head, n_head)
        elif hf.endswith("self_attn.k_proj.weight"):
            arr = permute_qk(arr, n_head, n_kv)
        yield gguf_name(tmap, hf), arr


def source_gguf(folder: Path) -> Path | None:
    """The GGUF a model folder was converted from by chatkit.models (its completion marker says)."""
    marker = Path(folder) / "chatkit-model.json"
    try:
        source = json.loads(marker.read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(source) if source and Path(source).is_file() else None


def metadata_from_gguf(src: Path, cfg: dict[str, Any]) -> list[KV]:
    """Every key of the GGUF the model came from (tokenizer, chat template, hparams), checked against config."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(src))
    except Exception as exc:  # gguf-py raises many kinds on a damaged file
        raise ModelError(f"cannot read GGUF {src}: {str(exc).splitlines()[0][:160]}", "reinstall the package that ships it") from None
    kvs: list[KV] = []
    values: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith(_SKIP_SOURCE_KEYS):
            continue
        value = field.contents()
        values[key] = value
        kvs.append(KV(key, value, field.types[0], field.types[-1] if len(field.types) > 1 else None))
    expect = {"llama.block_count": cfg["num_hidden_layers"], "llama.embedding_length": cfg["hidden_size"],
              "llama.attention.head_count": cfg["num_attention_heads"]}
    for key, want in expect.items():
        if values.get(key) != want:
            raise ModelError(f"{src.name} does not match the model folder ({key} {values.get(key)} vs {want})",
                             "convert the folder again: delete it under <data dir>/models and rerun")
    return kvs


def _pre_tokenizer_name(tok: dict[str, Any]) -> str | None:
    pre = tok.get("pre_tokenizer") or {}
    if tok.get("normalizer"):
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False):
        return "gpt-2"
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers") or []
        if (len(parts) == 2 and parts[0].get("type") == "Digits" and parts[0].get("individual_digits")
                and parts[1].get("type") == "ByteLevel" and parts[1].get("use_regex", True)):
            return "smollm"
    return None


def metadata_from_hf(folder: Path, cfg: dict[str, Any], name: str) -> list[KV]:
    """Llama hparams from config.json and a GPT-2-style byte-level BPE vocabulary from tokenizer.json."""
    import gguf

    T = gguf.GGUFValueType
    unsupported = ModelError(f"the tokenizer of {folder} is not a plain byte-level BPE one this GGUF writer knows",
                             "export with --merged and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    try:
        tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise unsupported from None
    model = tok.get("model") or {}
    pre = _pre_tokenizer_name(tok)
    if model.get("type") != "BPE" or pre is None:
        raise unsupported
    ids: dict[int, tuple[str, int]] = {int(i): (t, int(gguf.TokenType.NORMAL)) for t, i in model["vocab"].items()}
    by_text = {}
    for added in tok.get("added_tokens", []):
        kind = int(gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED)
        ids[int(added["id"])] = (added["content"], kind)
        by_text[added["content"]] = int(added["id"])
    n_vocab = max(int(cfg["vocab_size"]), max(ids) + 1)
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        text, kind = ids.get(i, (f"[PAD{i}]", int(gguf.TokenType.UNUSED)))
        tokens.append(text)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    template = tok_cfg.get("chat_template")
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if not template:
        raise ModelError(f"{folder} has no chat template", "use an instruct/chat model")
    n_head, n_kv = heads(cfg)
    kvs = [
        KV("general.type", "model", T.STRING), KV("general.name", name, T.STRING),
        KV("llama.context_length", int(cfg.get("max_position_embeddings", 2048)), T.UINT32),
        KV("llama.embedding_length", int(cfg["hidden_size"]), T.UINT32),
        KV("llama.block_count", int(cfg["num_hidden_layers"]), T.UINT32),
        KV("llama.feed_forward_length", int(cfg["intermediate_size"]), T.UINT32),
        KV("llama.attention.head_count", n_head, T.UINT32), KV("llama.attention.head_count_kv", n_kv, T.UINT32),
        KV("llama.rope.freq_base", rope_theta(cfg), T.FLOAT32),
        KV("llama.attention.layer_norm_rms_epsilon", float(cfg.get("rms_norm_eps", 1e-6)), T.FLOAT32),
        KV("llama.vocab_size", n_vocab, T.UINT32), KV("llama.rope.dimension_count", head_dim(cfg), T.UINT32),
        KV("tokenizer.ggml.model", "gpt2", T.STRING), KV("tokenizer.ggml.pre", pre, T.STRING),
        KV("tokenizer.ggml.tokens", tokens, T.ARRAY, T.STRING), KV("tokenizer.ggml.token_type", types, T.ARRAY, T.INT32),
        KV("tokenizer.ggml.add_bos_token", False, T.BOOL), KV("tokenizer.ggml.add_space_prefix", False, T.BOOL),
        KV("tokenizer.chat_template", template, T.STRING),
    ]
    if head_dim(cfg) != int(cfg["hidden_size"]) // n_head:
        kvs += [KV("llama.attention.key_length", head_dim(cfg), T.UINT32), KV("llama.attention.value_length", head_dim(cfg), T.UINT32)]
    if merges:
        kvs.append(KV("tokenizer.ggml.merges", merges, T.ARRAY, T.STRING))
    for role in ("bos", "eos", "unk", "pad"):
        token = tok_cfg.get(f"{role}_token")
        token = token.get("content") if isinstance(token, dict) else token
        tid = by_text.get(token) if token else None
        if tid is None and token in model["vocab"]:
            tid = model["vocab"][token]
        if tid is not None:
            key = "padding" if role == "pad" else ("unknown" if role == "unk" else role)
            kvs.append(KV(f"tokenizer.ggml.{key}_token_id", int(tid), T.UINT32))
    return kvs


def _choose_type(name: str, arr: Any, quant: str) -> Any:
    import gguf

    Q = gguf.GGMLQuantizationType
    if arr.ndim == 1 or quant == "f32":
        return Q.F32
    if quant == "f16" or arr.shape[-1] % 32:
        return Q.F16
    if name in ("token_embd.weight", "output.weight"):
        # The output head (tied to the embedding in small models) sets the next-token ranking directly:
        # kept above the rest, as llama-quantize does. q8_0 with an f16 head agreed with fp32 on 98.3% of
        # next tokens for the packaged model, 97.1% with a q8_0 head.
        return Q.F16 if quant == "q8_0" else Q.Q8_0
    return Q.Q8_0 if quant == "q8_0" else Q.Q4_0


def file_type(quant: str) -> int:
    import gguf

    F = gguf.LlamaFileType
    return int({"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "q8_0": F.MOSTLY_Q8_0, "q4_0": F.MOSTLY_Q4_0}[quant])


def write_model(out: Path, tensors: Iterable[tuple[str, Any]], kvs: list[KV], quant: str,
                progress: Callable[[str], None] | None = None) -> None:
    """Write a llama GGUF (kvs first, then tensors converted to `quant`) to `out`."""
    import gguf
    import numpy as np

    if quant not in QUANTS:
        raise ModelError(f"unknown GGUF type '{quant}'", f"use one of {', '.join(QUANTS)}")
    writer = gguf.GGUFWriter(str(out), "llama")
    try:
        for kv in kvs:
            writer.add_key_value(kv.key, kv.value, kv.vtype, kv.sub_type)
        writer.add_file_type(file_type(quant))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for name, arr in tensors:
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            qtype = _choose_type(name, arr, quant)
            if qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(name, arr)
            elif qtype == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(name, arr.astype(np.float16))
            else:
                writer.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        if progress:
            progress(f"writing {out.name}...")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


# --- LoRA adapters ----------------------------------------------------------------------------------


def _read_peft(adapter_dir: Path) -> tuple[dict[str, Any], Path]:
    name = adapter_dir.name
    try:
        peft = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise AdapterError(f"adapter '{name}' has no readable adapter_config.json", "chatkit adapters rm it and train again") from None
    weights = adapter_dir / "adapter_model.safetensors"
    if not isinstance(peft, dict) or peft.get("peft_type") != "LORA" or not weights.is_file():
        raise AdapterError(f"adapter '{name}' is not a PEFT LoRA adapter with safetensors weights",
                           "the llama.cpp backend converts plain PEFT LoRA adapters only; use --set generation.backend=hf")
    for key, why in (("use_dora", "DoRA"), ("modules_to_save", "modules_to_save"), ("layer_replication", "layer replication")):
        if peft.get(key):
            raise AdapterError(f"adapter '{name}' uses {why}, which llama.cpp adapters cannot express",
                               "use --set generation.backend=hf, or export it with --merged")
    if peft.get("bias", "none") != "none":
        raise AdapterError(f"adapter '{name}' trains biases, which llama.cpp adapters cannot express", "use --set generation.backend=hf")
    return peft, weights


def _pattern(patterns: dict[str, Any], module: str, default: float) -> float:
    for key, value in (patterns or {}).items():
        if module == key or module.endswith("." + key) or key in module.split("."):
            return float(value)
    return default


def lora_tensors(adapter_dir: Path, cfg: dict[str, Any]) -> tuple[float, list[tuple[str, Any]]]:
    """(alpha, [(gguf name, float32 array)]) of a PEFT LoRA adapter, checked against the base config."""
    import numpy as np
    from safetensors import safe_open

    name = adapter_dir.name
    peft, weights = _read_peft(adapter_dir)
    alpha = float(peft.get("lora_alpha") or peft.get("r") or 8)
    n_head, n_kv = heads(cfg)
    n_blocks = int(cfg["num_hidden_layers"])
    tmap = _tensor_map(n_blocks)
    hidden, inter, hd = int(cfg["hidden_size"]), int(cfg["intermediate_size"]), head_dim(cfg)
    shapes = {"q_proj": (n_head * hd, hidden), "k_proj": (n_kv * hd, hidden), "v_proj": (n_kv * hd, hidden),
              "o_proj": (hidden, n_head * hd), "gate_proj": (inter, hidden), "up_proj": (inter, hidden), "down_proj": (hidden, inter)}
    pairs: dict[str, dict[str, Any]] = {}
    try:
        with safe_open(str(weights), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if ".lora_A." not in key and ".lora_B." not in key:
                    raise AdapterError(f"adapter '{name}' holds '{key}', not a LoRA A/B matrix",
                                       "the llama.cpp backend converts plain PEFT LoRA adapters only; use --set generation.backend=hf")
                module = key.split(".lora_")[0].removeprefix("base_model.model.")
                pairs.setdefault(module, {})["A" if ".lora_A." in key else "B"] = fh.get_tensor(key).float().numpy()
    except AdapterError:
        raise
    except Exception as exc:  # safetensors raises several kinds on a damaged file
        raise AdapterError(f"cannot read adapter '{name}': {str(exc).splitlines()[0][:160]}", "chatkit adapters rm it and train again") from None
    out: list[tuple[str, Any]] = []
    for module, ab in sorted(pairs.items()):
        kind = module.rsplit(".", 1)[-1]
        if kind not in LORA_TARGETS or "A" not in ab or "B" not in ab:
            raise AdapterError(f"adapter '{name}' adapts '{module}', which llama.cpp adapters on a Llama base cannot express",
                               f"target only {', '.join(LORA_TARGETS)}, or use --set generation.backend=hf")
        a, b = ab["A"], ab["B"]
        rank = a.shape[0]
        want_out, want_in = shapes[kind]
        if a.shape != (rank, want_in) or b.shape != (want_out, rank):
            raise AdapterError(f"adapter '{name}' was made for another base model ({module}: A {tuple(a.shape)}, B {tuple(b.shape)}; "
                               f"this base wants {want_in} in, {want_out} out)",
                               "set models.dialogue to the adapter's base model, or train a new adapter")
        r = _pattern(peft.get("rank_pattern") or {}, module, float(peft.get("r") or rank))
        a_t = _pattern(peft.get("alpha_pattern") or {}, module, alpha)
        peft_scale = a_t / math.sqrt(r) if peft.get("use_rslora") else a_t / r
        factor = peft_scale / (alpha / rank)
        if factor != 1.0:
            b = b * np.float32(factor)
        if kind == "q_proj":
            b = permute_qk(b, n_head, n_head)
        elif kind == "k_proj":
            b = permute_qk(b, n_head, n_kv)
        base = gguf_name(tmap, module + ".weight")
        if not base.startswith("blk."):
            raise AdapterError(f"adapter '{name}' adapts '{module}', outside the transformer blocks", "use --set generation.backend=hf")
        out += [(base + ".lora_a", np.ascontiguousarray(a, dtype=np.float32)), (base + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))]
    if not out:
        raise AdapterError(f"adapter '{name}' has no LoRA weights", "chatkit adapters rm it and train again")
    return alpha, out


def write_lora(adapter_dir: Path, cfg: dict[str, Any], out: Path) -> None:
    import gguf

    check_llama(cfg, "the base model")
    alpha, tensors = lora_tensors(adapter_dir, cfg)
    writer = gguf.GGUFWriter(str(out), "llama")
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_string("general.name", adapter_dir.name)
        for name, arr in tensors:
            writer.add_tensor(name, arr)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def lora_cache_key(adapter_dir: Path, cfg: dict[str, Any]) -> str:
    import hashlib

    from chatkit.models import file_sha256

    h = hashlib.sha256(f"v{CONVERTER_VERSION}|{heads(cfg)}|{cfg.get('num_hidden_layers')}|{cfg.get('hidden_size')}".encode())
    for fname in ("adapter_config.json", "adapter_model.safetensors"):
        path = adapter_dir / fname
        h.update(file_sha256(path).encode() if path.is_file() else b"-")
    return h.hexdigest()[:24]


def ensure_lora_gguf(adapter_dir: Path, base_folder: Path, cache_dir: Path) -> Path:
    """The adapter as a llama.cpp LoRA GGUF, converted once per adapter content under cache_dir."""
    cfg = read_config(base_folder)
    _read_peft(adapter_dir)  # a clear error before hashing anything
    target = cache_dir / "llamacpp-lora" / f"{lora_cache_key(adapter_dir, cfg)}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        write_lora(adapter_dir, cfg, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
