"""Engine generation speed vs raw `model.generate` (bf16, default cache), same prompt, same run.

Goals (issue 6): engine tokens/s >= 1.5x raw; engine time to first token <= 1.2x a bare forward pass
over the same prompt.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from chatkit.config import Paths, Settings, default_home  # noqa: E402
from chatkit.generation import GenParams  # noqa: E402
from chatkit.generation.device import pick_dtype  # noqa: E402
from chatkit.generation.hf import HFGenerator, StreamStats  # noqa: E402
from chatkit.models import resolve_dialogue  # noqa: E402
from chatkit.prompting import Passage, PromptTurn, build_messages  # noqa: E402

NEW_TOKENS = 64
RUNS = 3
PASSAGES = (
    Passage("LoRA and QLoRA", "How LoRA works", "LoRA keeps the pre-trained weight matrix frozen and learns a low-rank "
            "update: two small matrices A and B whose product, scaled by alpha over r, is added to the layer's output. "
            "With rank 8 on a 4096 by 4096 projection, the update has about 65 thousand parameters instead of 16.7 million."),
    Passage("LoRA and QLoRA", "QLoRA", "QLoRA stores the frozen base model in 4-bit NormalFloat (NF4) with double "
            "quantization and paged optimizers, and trains LoRA adapters in bf16 on top, so a 65B model fits on one 48 GB GPU."),
)


def prompt_ids(gen: HFGenerator) -> list[int]:
    return gen.render(build_messages([PromptTurn("What is LoRA and why is it cheaper than full fine-tuning?", PASSAGES)]))


def raw_generate(path: str, ids: list[int]) -> tuple[float, float]:
    """TTFT and decode tokens/s of plain `model.generate` in bf16 with its default cache."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    x = torch.tensor([ids])
    kw = {"do_sample": False, "pad_token_id": model.config.eos_token_id}
    with torch.inference_mode():
        model.generate(x, max_new_tokens=4, **kw)  # warm-up
        ttft, total = [], []
        for _ in range(RUNS):
            t = time.perf_counter()
            model.generate(x, max_new_tokens=1, **kw)
            ttft.append(time.perf_counter() - t)
            t = time.perf_counter()
            out = model.generate(x, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, **kw)
            total.append((time.perf_counter() - t, out.shape[1] - x.shape[1]))
    first = statistics.median(ttft)
    rates = [(n - 1) / max(t - first, 1e-9) for t, n in total]
    return first, statistics.median(rates)


def bare_forward(gen: HFGenerator, ids: list[int]) -> float:
    import torch

    x = torch.tensor([ids])
    with torch.inference_mode():
        gen.model(input_ids=x)
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            gen.model(input_ids=x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def engine_stream(gen: HFGenerator, ids: list[int]) -> tuple[float, float]:
    params = GenParams(max_new_tokens=NEW_TOKENS, repetition_penalty=1.1)
    list(gen.stream(ids, GenParams(max_new_tokens=4)))  # warm-up
    ttft, rates = [], []
    for _ in range(RUNS):
        stats = StreamStats()
        for _piece in gen.stream(ids, params, stats=stats):
            pass
        ttft.append(stats.prefill_s)
        rates.append(stats.tokens_per_s)
    return statistics.median(ttft), statistics.median(rates)


def main() -> None:
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else default_home()
    settings, paths = Settings(), Paths(home).ensure()
    path = resolve_dialogue(settings, paths, print).path
    dtype = pick_dtype(settings.models.dtype, paths.cache)
    gen = HFGenerator(path, dtype=dtype)
    ids = prompt_ids(gen)
    e_ttft, e_rate = engine_stream(gen, ids)
    fwd = bare_forward(gen, ids)
    r_ttft, r_rate = raw_generate(path, ids)
    print(f"prompt: {len(ids)} tokens, {NEW_TOKENS} new tokens, median of {RUNS}, engine dtype {dtype}")
    print(f"raw model.generate (bf16, default cache): TTFT {r_ttft * 1000:.0f} ms, decode {r_rate:.1f} tok/s")
    print(f"bare forward pass over the prompt ({dtype}): {fwd * 1000:.0f} ms")
    print(f"engine stream ({dtype}): TTFT {e_ttft * 1000:.0f} ms, decode {e_rate:.1f} tok/s")
    print(f"decode ratio engine/raw: {e_rate / r_rate:.2f} (goal >= 1.5)")
    print(f"TTFT ratio engine/bare forward: {e_ttft / fwd:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
