"""Merge an adapter into its base model, but only after proving the merge changed nothing.

A merged model should give the same logits as base + adapter; merging into a different base, extreme
adapter weights or a dtype round-off can break that silently. So both are run in fp32 on sample
prompts and the merged weights are written only if the largest logit difference is <= 1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, InputError
from chatkit.prompting import Passage, PromptTurn, build_messages
from chatkit.retrieval.atomic import atomic_dir

TOLERANCE = 1e-3
SAMPLE_TURNS = [
    [PromptTurn("What is LoRA?", (Passage("LoRA", "Idea", "LoRA freezes the pre-trained weights and learns two small low-rank matrices."),))],
    [PromptTurn("How is perplexity computed?", ())],
    [PromptTurn("What does FAISS do?", (Passage("FAISS", "", "FAISS stores dense vectors and finds nearest neighbours quickly."),
                                        Passage("BM25", "", "BM25 ranks documents by term frequency.")), "It finds nearest neighbours [1]."),
     PromptTurn("And BM25?", ())],
]


def sample_ids(tokenizer: Any) -> list[list[int]]:
    out = []
    for turns in SAMPLE_TURNS:
        text = tokenizer.apply_chat_template(build_messages(turns), tokenize=False, add_generation_prompt=True)
        out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return out


def _logits(model: Any, prompts: list[list[int]]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0].float().clone() for ids in prompts]


def max_logit_diff(a: list[Any], b: list[Any]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def merged_and_checked(base: Any, adapter_dir: Path, prompts: list[list[int]], tolerance: float) -> tuple[Any, float]:
    """base + adapter merged, and the max logit difference from the unmerged adapter; refuses past `tolerance`."""
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    except Exception as exc:  # peft raises many kinds for a mismatched or broken adapter
        raise AdapterError(f"cannot load adapter '{adapter_dir.name}': {str(exc).splitlines()[0][:160]}",
                           "the adapter may be corrupt or made for another base model") from None
    model.eval()
    with_adapter = _logits(model, prompts)
    merged = model.merge_and_unload()
    diff = max_logit_diff(with_adapter, _logits(merged, prompts))
    if not diff <= tolerance:  # also catches NaN
        raise AdapterError(f"merged logits differ from the adapter's by {diff:.2e} (> {tolerance:g}); nothing was written",
                           f"use the adapter unmerged: `chatkit adapters export {adapter_dir.name} --out DIR`")
    return merged, diff


def merge_adapter(base_path: str, adapter_dir: Path, out: Path, tolerance: float = TOLERANCE) -> float:
    """Write base+adapter merged into `out` (which must not exist); returns the max logit difference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatkit.training.build import quiet_libraries

    if out.exists():
        raise InputError(f"{out} already exists", "pass a new folder to --out")
    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    prompts = sample_ids(tokenizer)
    merged, diff = merged_and_checked(base, adapter_dir, prompts, tolerance)
    info = {"adapter": adapter_dir.name, "base_path": base_path, "max_abs_logit_diff": diff, "tolerance": tolerance}

    def fill(tmp: Path) -> None:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "chatkit-merged.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_dir(out, fill)
    return diff


# The least next-token (top-1) agreement between llama.cpp running the written GGUF and the merged
# model in fp32 on the sample prompts; below it the file is not written. Set well under what was
# measured on the packaged model (348 positions: f16 100%, q8_0 98.3%, q4_0 71.6%), so only a broken
# conversion (wrong tensor layout, wrong tokenizer) trips it, not quantization noise.
GGUF_AGREEMENT_FLOOR = {"f32": 0.95, "f16": 0.95, "q8_0": 0.9, "q4_0": 0.5}


def export_gguf(base_path: str, adapter_dir: Path | None, out: Path, quant: str = "q8_0",
                progress: Any = None, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Write base (+ adapter, merged in fp32) as one llama.cpp GGUF file `out`; checked, then renamed into place.

    The metadata (tokenizer, chat template, hyperparameters) is copied from the GGUF the base model was
    converted from when there is one (the packaged model), else built from config.json and tokenizer.json.
    When llama-cpp-python is installed the written file is run on the sample prompts and its next-token
    choices compared with the merged model's.
    """
    import os

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatkit.generation import gguf_write as gw
    from chatkit.training.build import quiet_libraries

    say = progress or (lambda _msg: None)
    if out.exists():
        raise InputError(f"{out} already exists", "pass a new file name to --gguf")
    if quant not in gw.QUANTS:
        raise InputError(f"unknown GGUF type '{quant}'", f"use one of {', '.join(gw.QUANTS)}")
    folder = Path(base_path)
    cfg = gw.read_config(folder)
    gw.check_llama(cfg, f"the base model {folder.name}")
    source = gw.source_gguf(folder)
    name = f"{folder.name}+{adapter_dir.name}" if adapter_dir else folder.name
    kvs = gw.metadata_from_gguf(source, cfg) if source else gw.metadata_from_hf(folder, cfg, name)
    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    prompts = sample_ids(tokenizer)
    diff = 0.0
    if adapter_dir is not None:
        model, diff = merged_and_checked(model, adapter_dir, prompts, tolerance)
    model.eval()
    reference = [x.numpy() for x in _logits(model, prompts)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        say(f"writing {quant} GGUF...")
        state = ((k, v.detach().to(torch.float32).numpy()) for k, v in model.state_dict().items())
        gw.write_model(tmp, gw.model_tensors(state, cfg), kvs, quant)
        del model
        agreement, positions = _gguf_agreement(base_path, tmp, prompts, reference)
        floor = GGUF_AGREEMENT_FLOOR[quant]
        if agreement is not None and agreement < floor:
            raise AdapterError(f"llama.cpp on the written GGUF agrees with the merged model on only {agreement:.1%} of "
                               f"{positions} next tokens (floor {floor:.0%} for {quant}); nothing was written",
                               "try --quant f16, or export with --merged and convert with llama.cpp's own script")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"quant": quant, "bytes": out.stat().st_size, "max_abs_logit_diff": diff, "top1_agreement": agreement,
            "positions": positions, "metadata_from": str(source) if source else "config.json + tokenizer.json"}


def _gguf_agreement(base_path: str, gguf: Path, prompts: list[list[int]], reference: list[Any]) -> tuple[float | None, int]:
    """Top-1 agreement of llama.cpp on `gguf` with `reference` logits; (None, 0) without llama-cpp-python."""
    from chatkit.generation.loader import llamacpp_installed

    if not llamacpp_installed():
        return None, 0
    from chatkit.generation.llamacpp import LlamaCppGenerator, top1_agreement

    gen = LlamaCppGenerator(base_path, str(gguf), n_ctx=max(len(p) for p in prompts) + 8)
    try:
        return top1_agreement([gen.position_logits(p) for p in prompts], reference)
    finally:
        gen.close()
