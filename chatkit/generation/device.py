"""Pick the dialogue model's dtype from this CPU, by measurement, never by assumption.

bf16 matmuls are fast only where the CPU has bf16 instructions (AVX-512 BF16 or AMX), and even then
prefill was measured 5x slower than fp32 for the 135M model on one such machine, while another
machine without them ran a bf16 matmul 80x slower. So `auto` times both on model-shaped matmuls
once per CPU and caches the verdict.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16() -> bool:
    return any(f in cpu_flags() for f in BF16_FLAGS)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _time_matmul(dtype: object) -> float:
    import torch

    a = torch.randn(256, 576, dtype=dtype)  # type: ignore[call-overload]
    b = torch.randn(576, 1536, dtype=dtype)  # type: ignore[call-overload]
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    return time.perf_counter() - start


def pick_dtype(requested: str, cache_dir: Path | None = None) -> str:
    """Return 'float32' or 'bfloat16'."""
    import torch

    if requested in ("float32", "bfloat16"):
        return requested
    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if not cpu_has_bf16():
        return "float32"
    cache = (cache_dir / "dtype.json") if cache_dir else None
    key = f"{cpu_name()}|{torch.__version__}|{torch.get_num_threads()}"
    if cache and cache.is_file():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                return str(saved["dtype"])
        except (ValueError, KeyError):
            pass
    fp32, bf16 = _time_matmul(torch.float32), _time_matmul(torch.bfloat16)
    # bf16 must win clearly: prefill also runs softmax/norms in fp32, which eats small gains.
    choice = "bfloat16" if bf16 < 0.7 * fp32 else "float32"
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "dtype": choice, "fp32_s": fp32, "bf16_s": bf16}))
    return choice
