"""Build the dialogue generator the settings ask for, on the backend `generation.backend` picks."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatkit.config import PACKAGED_DIALOGUE, Paths, Settings
from chatkit.errors import ModelError
from chatkit.generation.device import pick_dtype
from chatkit.generation.hf import HFGenerator
from chatkit.generation.llamacpp import LlamaCppGenerator
from chatkit.models import packaged_gguf_path, resolve_dialogue

INSTALL_HINT = "pip install -e '.[llamacpp]' (compiles llama.cpp, ~13 min on 2 cores), or --set generation.backend=hf"


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # hf | llamacpp
    gguf: Path | None
    reason: str


def llamacpp_installed() -> bool:
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def find_gguf(settings: Settings) -> Path | None:
    """The dialogue model's GGUF: the packaged model's own file, or the one `*.gguf` in its folder."""
    name = settings.models.dialogue
    if name == PACKAGED_DIALOGUE:
        try:
            return packaged_gguf_path()
        except ModelError:
            return None
    folder = Path(name).expanduser()
    if name.startswith("packaged:") or not folder.is_dir():
        return None
    found = sorted(folder.glob("*.gguf"))
    return found[0] if found else None


def choose_backend(settings: Settings) -> BackendChoice:
    """hf or llamacpp, and why; `auto` takes llama.cpp when it is installed and the model has a GGUF."""
    wanted = settings.generation.backend
    if wanted == "hf":
        return BackendChoice("hf", None, "generation.backend is hf")
    installed, gguf = llamacpp_installed(), find_gguf(settings)
    if wanted == "llamacpp":
        if not installed:
            raise ModelError("generation.backend is llamacpp but llama-cpp-python is not installed", INSTALL_HINT)
        if gguf is None:
            raise ModelError(f"generation.backend is llamacpp but the dialogue model ({settings.models.dialogue}) has no GGUF file",
                             "put a *.gguf of the same weights in the model folder (chatkit adapters export NAME --gguf), "
                             "or --set generation.backend=hf")
        return BackendChoice("llamacpp", gguf, f"generation.backend is llamacpp ({gguf.name})")
    if not installed:
        return BackendChoice("hf", None, "auto: llama-cpp-python is not installed")
    if gguf is None:
        return BackendChoice("hf", None, "auto: the dialogue model has no GGUF file")
    return BackendChoice("llamacpp", gguf, f"auto: llama-cpp-python is installed and the model has {gguf.name}")


def load_generator(settings: Settings, paths: Paths,
                   progress: Callable[[str], None] | None = None) -> HFGenerator | LlamaCppGenerator:
    choice = choose_backend(settings)
    resolved = resolve_dialogue(settings, paths, progress)
    note = choice.reason
    if choice.backend == "llamacpp" and choice.gguf is not None:
        try:
            gen = LlamaCppGenerator(resolved.path, str(choice.gguf), threads=settings.models.threads,
                                    n_ctx=settings.generation.context_tokens, cache_dir=paths.cache)
        except ModelError as exc:
            if settings.generation.backend == "llamacpp":
                raise
            note = f"auto: llama.cpp unusable ({exc.message}); using transformers"
            if progress:
                progress(note)
        else:
            gen.model_id = resolved.model_id
            gen.backend_note = note
            return gen
    dtype = pick_dtype(settings.models.dtype, paths.cache)
    hf = HFGenerator(resolved.path, dtype=dtype, threads=settings.models.threads)
    hf.model_id = resolved.model_id
    hf.backend_note = note
    return hf
