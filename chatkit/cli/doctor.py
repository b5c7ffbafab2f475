"""`chatkit doctor`: check the install, the models and the data dir."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[common], help="check the install, the models and the data dir")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--skip-models", action="store_true", help="do not load the models (fast)")
    p.set_defaults(func=run)


REQUIRED_PACKAGES = [
    ("torch", "torch"), ("sentence-transformers", "sentence_transformers"), ("faiss-cpu", "faiss"),
    ("transformers", "transformers"), ("peft", "peft"), ("trl", "trl"), ("textual", "textual"),
    ("datasets", "datasets"), ("accelerate", "accelerate"), ("gguf", "gguf"), ("bm25s", "bm25s"),
    ("pypdf", "pypdf"), ("selectolax", "selectolax"), ("sacrebleu", "sacrebleu"),
    ("rouge-score", "rouge_score"), ("matplotlib", "matplotlib"),
]
OPTIONAL_PACKAGES = [("llama-cpp-python", "llama_cpp"), ("bitsandbytes", "bitsandbytes"), ("fastapi", "fastapi"), ("uvicorn", "uvicorn"),
                     ("prometheus-client", "prometheus_client")]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _run_check(checks: list[Check], name: str, fn: Any, required: bool = True) -> Any:
    try:
        detail, value = fn()
        checks.append(Check(name, True, detail, required))
        return value
    except Exception as exc:  # a doctor reports every failure instead of stopping at the first
        msg = getattr(exc, "message", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        checks.append(Check(name, False, msg[:200], required))
        return None


def collect(ctx: Context, skip_models: bool = False) -> list[Check]:
    import importlib.metadata
    import os
    import platform
    import sys
    import tempfile

    checks: list[Check] = []
    settings = ctx.settings
    checks.append(Check("python", sys.version_info >= (3, 11), platform.python_version()))

    def torch_check() -> tuple[str, Any]:
        import torch

        ok = torch.__version__.split("+")[0] == "2.13.0"
        if not ok:
            raise RuntimeError(f"torch {torch.__version__}, expected 2.13.0 (pip install torch==2.13.0)")
        return f"{torch.__version__}, {torch.get_num_threads()} threads", torch

    torch = _run_check(checks, "torch", torch_check)

    def bf16_check() -> tuple[str, Any]:
        from chatkit.generation.device import cpu_has_bf16, pick_dtype

        dtype = pick_dtype(settings.models.dtype, ctx.paths.cache)
        return f"cpu bf16 instructions: {'yes' if cpu_has_bf16() else 'no'}; dialogue dtype: {dtype}", dtype

    _run_check(checks, "bf16", bf16_check, required=False)
    for dist, module in REQUIRED_PACKAGES[1:]:
        _run_check(checks, dist, lambda d=dist, m=module: (_import_version(m, d, importlib.metadata), None))
    for dist, module in OPTIONAL_PACKAGES:
        _run_check(checks, dist, lambda d=dist, m=module: (_import_version(m, d, importlib.metadata), None), required=False)

    def home_check() -> tuple[str, Any]:
        paths = ctx.paths
        with tempfile.NamedTemporaryFile(dir=paths.home, prefix=".doctor-") as fh:
            fh.write(b"ok")
        return str(paths.home), None

    _run_check(checks, "data dir writable", home_check)

    def offline_check() -> tuple[str, Any]:
        if settings.models.allow_online:
            return "online allowed by models.allow_online", None
        if os.environ.get("HF_HUB_OFFLINE") != "1" or os.environ.get("TRANSFORMERS_OFFLINE") != "1":
            raise RuntimeError("HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE not set")
        return "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1", None

    _run_check(checks, "offline mode", offline_check)

    def gpu_check() -> tuple[str, Any]:
        if torch is not None and torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}", None
        return "none (CPU only; QLoRA needs a CUDA GPU)", None

    _run_check(checks, "gpu", gpu_check, required=False)

    def backend_check() -> tuple[str, Any]:
        from chatkit.generation.loader import choose_backend

        choice = choose_backend(settings)
        return f"{choice.backend} ({choice.reason})", None

    _run_check(checks, "generation backend", backend_check, required=False)
    if not skip_models:
        _model_checks(ctx, checks)
    return checks


def _import_version(module: str, dist: str, metadata: Any) -> str:
    import importlib

    importlib.import_module(module)
    return str(metadata.version(dist))


def _model_checks(ctx: Context, checks: list[Check]) -> None:
    import time

    settings, paths = ctx.settings, ctx.paths

    def embedder_check() -> tuple[str, Any]:
        from chatkit.models import resolve_embedder
        from chatkit.retrieval.embedder import Embedder

        resolved = resolve_embedder(settings)
        start = time.perf_counter()
        emb = Embedder(resolved.path, resolved.model_id)
        vec = emb.encode(["chatkit doctor check"])
        return f"{resolved.model_id}: dim {vec.shape[1]} ({time.perf_counter() - start:.1f} s)", None

    _run_check(checks, "embedder", embedder_check)

    def dialogue_check() -> tuple[str, Any]:
        from chatkit.generation import GenParams
        from chatkit.generation.loader import load_generator

        start = time.perf_counter()
        gen = load_generator(settings, paths, ctx.say)
        ids = gen.render([{"role": "user", "content": "Say hello."}])
        text = gen.generate(ids, GenParams(max_new_tokens=5, repetition_penalty=1.0))
        if not text.strip():
            raise RuntimeError("the model generated nothing")
        fallback = f"; {gen.backend_note}" if "unusable" in gen.backend_note else ""
        return (f"{gen.model_id} on {gen.backend_name} ({gen.dtype}{fallback}): {text.strip()[:40]!r} "
                f"({time.perf_counter() - start:.1f} s)"), None

    _run_check(checks, "dialogue model", dialogue_check)


def run(ctx: Context, args: argparse.Namespace) -> int:
    checks = collect(ctx, skip_models=args.skip_models)
    healthy = all(c.ok for c in checks if c.required)
    if args.json:
        print(json.dumps({"ok": healthy, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        from rich.table import Table

        table = Table(title="chatkit doctor")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for c in checks:
            status = "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.required else "[yellow]missing[/]")
            table.add_row(c.name, status, c.detail)
        ctx.console.print(table)
        ctx.console.print("[green]all required checks pass[/]" if healthy else "[red]some required checks failed[/]")
    return 0 if healthy else 1
