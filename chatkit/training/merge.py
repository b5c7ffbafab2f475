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


def merge_adapter(base_path: str, adapter_dir: Path, out: Path, tolerance: float = TOLERANCE) -> float:
    """Write base+adapter merged into `out` (which must not exist); returns the max logit difference."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatkit.training.setup import quiet_libraries

    if out.exists():
        raise InputError(f"{out} already exists", "pass a new folder to --out")
    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    except Exception as exc:  # peft raises many kinds for a mismatched or broken adapter
        raise AdapterError(f"cannot load adapter '{adapter_dir.name}': {str(exc).splitlines()[0][:160]}",
                           "the adapter may be corrupt or made for another base model") from None
    model.eval()
    prompts = sample_ids(tokenizer)
    with_adapter = _logits(model, prompts)
    merged = model.merge_and_unload()
    diff = max_logit_diff(with_adapter, _logits(merged, prompts))
    if not diff <= tolerance:  # also catches NaN
        raise AdapterError(f"merged logits differ from the adapter's by {diff:.2e} (> {tolerance:g}); nothing was written",
                           f"use the adapter unmerged: `chatkit adapters export {adapter_dir.name} --out DIR`")
    info = {"adapter": adapter_dir.name, "base_path": base_path, "max_abs_logit_diff": diff, "tolerance": tolerance}

    def fill(tmp: Path) -> None:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "chatkit-merged.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_dir(out, fill)
    return diff
