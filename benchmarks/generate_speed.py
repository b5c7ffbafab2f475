"""Generation speed, same prompt, same run.

transformers (issue 6): engine stream vs raw `model.generate` (bf16, default cache); goals: engine tokens/s
>= 1.5x raw, engine time to first token <= 1.2x a bare forward pass over the same prompt.

llama.cpp (issue 11): the engine's llama.cpp generator with an adapter active vs raw llama-cpp-python on
the same GGUF (`Llama.generate`, cold cache each run) vs raw `model.generate` in fp32; goals: engine
decode >= 0.9x raw llama.cpp and >= 4x transformers fp32, engine TTFT <= 1.2x the faster raw path.
The adapter is the registered one named by --adapter, else a random-B LoRA (r 16, all projections) made
here. `python benchmarks/generate_speed.py [HOME] [--threads N] [--adapter NAME]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from chatkit.config import Paths, Settings, default_home  # noqa: E402
from chatkit.generation.base import GenParams, StreamStats  # noqa: E402
from chatkit.generation.device import pick_dtype  # noqa: E402
from chatkit.generation.hf import HFGenerator  # noqa: E402
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


def prompt_ids(gen: Any) -> list[int]:
    return gen.render(build_messages([PromptTurn("What is LoRA and why is it cheaper than full fine-tuning?", PASSAGES)]))


def raw_generate(path: str, ids: list[int], dtype: str = "bfloat16") -> tuple[float, float]:
    """TTFT and decode tokens/s of plain `model.generate` with its default cache."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
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


def engine_stream(gen: Any, ids: list[int]) -> tuple[float, float]:
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


def raw_llamacpp(gguf: str, ids: list[int], threads: int, extra_buffers: bool, lora: str | None = None) -> tuple[float, float]:
    """TTFT and decode tokens/s of plain llama-cpp-python (`Llama.generate`, greedy, its own sampler)."""
    from chatkit.generation.llamacpp import close_llama, open_llama

    kw: dict[str, Any] = {"lora_path": lora} if lora else {}
    llm = open_llama(gguf, extra_buffers, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False, **kw)

    def run(n: int) -> tuple[float, float, int]:
        llm.reset()  # cold: no prompt prefix reused from the last run
        start = time.perf_counter()
        first = last = 0.0
        count = 0
        for _token in llm.generate(ids, temp=0.0, repeat_penalty=1.1):
            count += 1
            last = time.perf_counter()
            if count == 1:
                first = last - start
            if count == n:
                break
        return first, last - start, count

    run(4)  # warm-up
    ttft, rates = [], []
    for _ in range(RUNS):
        first, total, count = run(NEW_TOKENS)
        ttft.append(first)
        rates.append((count - 1) / max(total - first, 1e-9))
    close_llama(llm)
    return statistics.median(ttft), statistics.median(rates)


def random_adapter(path: str, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(str(out))
    return out


def llamacpp_rows(settings: Settings, paths: Paths, path: str, ids: list[int], threads: int, adapter: str | None) -> None:
    from chatkit.generation.gguf_write import ensure_lora_gguf
    from chatkit.generation.llamacpp import LlamaCppGenerator
    from chatkit.generation.loader import find_gguf

    gguf = find_gguf(settings)
    if gguf is None:
        print("llama.cpp: the dialogue model has no GGUF; rows skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if adapter:
            from chatkit.training.registry import get_adapter

            adapter_dir = get_adapter(paths, adapter).path
        else:
            adapter_dir = random_adapter(path, Path(tmp) / "random-b")
        gen = LlamaCppGenerator(path, str(gguf), threads=threads, n_ctx=settings.generation.context_tokens, cache_dir=paths.cache)
        gen.load_adapter(adapter_dir.name, adapter_dir)
        e_ttft, e_rate = engine_stream(gen, ids)
        gen.close()
        lora = str(ensure_lora_gguf(adapter_dir, Path(path), paths.cache))
        r_ttft, r_rate = raw_llamacpp(str(gguf), ids, threads, gen.extra_buffers)
        l_ttft, l_rate = raw_llamacpp(str(gguf), ids, threads, gen.extra_buffers, lora)
    h_ttft, h_rate = raw_generate(path, ids, "float32")
    print(f"llama.cpp on {gguf.name} ({gen.dtype}), {threads} threads, extra CPU buffers {'on' if gen.extra_buffers else 'off'}")
    print(f"engine on llama.cpp, adapter '{adapter_dir.name}' active: TTFT {e_ttft * 1000:.0f} ms, decode {e_rate:.1f} tok/s")
    print(f"raw llama-cpp-python, no adapter: TTFT {r_ttft * 1000:.0f} ms, decode {r_rate:.1f} tok/s")
    print(f"raw llama-cpp-python, same adapter (lora_path): TTFT {l_ttft * 1000:.0f} ms, decode {l_rate:.1f} tok/s")
    print(f"raw model.generate (float32): TTFT {h_ttft * 1000:.0f} ms, decode {h_rate:.1f} tok/s")
    print(f"decode ratio engine/raw llama.cpp: {e_rate / r_rate:.2f} (goal >= 0.9); with the same adapter: {e_rate / l_rate:.2f}")
    print(f"decode ratio engine/raw transformers fp32: {e_rate / h_rate:.2f} (goal >= 4)")
    print(f"TTFT ratio engine/faster raw path: {e_ttft / min(r_ttft, h_ttft):.2f} (goal <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", nargs="?", help="data dir (default: CHATKIT_HOME or the standard one)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both backends (0: models.threads / all cores)")
    parser.add_argument("--adapter", help="registered adapter for the llama.cpp rows (default: a random-B LoRA)")
    parser.add_argument("--skip-hf", action="store_true", help="only the llama.cpp rows")
    args = parser.parse_args()
    home = Path(args.home) if args.home else default_home()
    settings, paths = Settings(), Paths(home).ensure()
    path = resolve_dialogue(settings, paths, print).path
    threads = args.threads or settings.models.threads
    if threads:
        import torch

        torch.set_num_threads(threads)
    else:
        from chatkit.generation.llamacpp import available_cores

        threads = available_cores()
    gen = HFGenerator(path, dtype=pick_dtype(settings.models.dtype, paths.cache), threads=threads)
    ids = prompt_ids(gen)
    print(f"prompt: {len(ids)} tokens, {NEW_TOKENS} new tokens, median of {RUNS}, repetition penalty 1.1")
    if not args.skip_hf:
        hf_rows(gen, path, ids)
    del gen
    if importlib.util.find_spec("llama_cpp") is None:
        print("llama.cpp: llama-cpp-python is not installed; rows skipped")
        return
    llamacpp_rows(settings, paths, path, ids, threads, args.adapter)


def hf_rows(gen: HFGenerator, path: str, ids: list[int]) -> None:
    dtype = gen.dtype
    e_ttft, e_rate = engine_stream(gen, ids)
    fwd = bare_forward(gen, ids)
    r_ttft, r_rate = raw_generate(path, ids)
    print(f"raw model.generate (bf16, default cache): TTFT {r_ttft * 1000:.0f} ms, decode {r_rate:.1f} tok/s")
    print(f"bare forward pass over the prompt ({dtype}): {fwd * 1000:.0f} ms")
    print(f"engine stream ({dtype}): TTFT {e_ttft * 1000:.0f} ms, decode {e_rate:.1f} tok/s")
    print(f"decode ratio engine/raw: {e_rate / r_rate:.2f} (goal >= 1.5)")
    print(f"TTFT ratio engine/bare forward: {e_ttft / fwd:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
