"""The Hugging Face transformers backend: the home of torch/transformers/peft for inference."""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, ModelError
from chatkit.generation.base import GeneratorBase, eos_ids

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, character -> byte: printable bytes stand for themselves, the rest are shifted."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(kept)
    shifted = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            chars.append(256 + shifted)
            shifted += 1
    return {chr(c): b for b, c in zip(kept, chars, strict=True)}


def is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders") or []}
    return "ByteLevel" in kinds


class HFGenerator(GeneratorBase):
    """A causal LM loaded once; PEFT adapters are switched on the shared base without reloading it."""

    backend_name = "hf"

    def __init__(self, model_path: str, dtype: str = "float32", threads: int = 0) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads > 0:
            torch.set_num_threads(threads)
        self.model_path = model_path
        self.model_id = model_path
        self.dtype = dtype
        self.model: Any
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load dialogue model from {model_path}: {str(exc).splitlines()[0]}",
                             "check models.dialogue points at a Hugging Face causal-LM folder") from None
        self.model.eval()
        if self.tokenizer.chat_template is None:
            raise ModelError(f"model at {model_path} has no chat template", "use an instruct/chat model folder")
        self.eos_ids = eos_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        self.adapters: dict[str, str] = {}
        self.active_adapter: str | None = None
        self._lock = threading.RLock()
        self._cache: Any = None  # the keys/values of the answer being decoded
        # transformers renamed forward's `past_key_values` to `cache` within 5.x (the old name warns).
        forward = inspect.signature(type(self.model).forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._special = frozenset(int(t) for t in self.tokenizer.all_special_ids)
        self._added = frozenset(int(t) for t in getattr(self.tokenizer, "added_tokens_decoder", {}))
        self._alphabet = byte_level_alphabet() if is_byte_level(self.tokenizer) else {}
        self._bytes: dict[int, bytes] = {}

    @property
    def max_context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    # --- adapters -----------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        if name in self.adapters:
            return
        from peft import PeftModel

        if not (path / "adapter_config.json").is_file():
            raise AdapterError(f"adapter '{name}' at {path} has no adapter_config.json", "chatkit adapters rm it and train again")
        try:
            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                self.model.load_adapter(str(path), adapter_name=name)
        except Exception as exc:
            raise AdapterError(f"cannot load adapter '{name}': {str(exc).splitlines()[0][:200]}",
                               "the adapter may be corrupt or made for another base model") from None
        self.model.eval()
        self.adapters[name] = str(path)
        self.active_adapter = name

    def set_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise AdapterError(f"adapter '{name}' is not loaded", "load it first")
        with self._lock:  # not while an answer is being decoded with the other weights
            if name is not None:
                self.model.set_adapter(name)
            self.active_adapter = name

    def _adapter_context(self) -> Any:
        if self.adapters and self.active_adapter is None:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # --- primitives of the decode loop (base.py) ----------------------------------------------

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        import torch
        from transformers import DynamicCache

        with self._lock, torch.inference_mode(), self._adapter_context():
            self._cache = DynamicCache()
            try:
                yield
            finally:
                self._cache = None

    def prefill(self, prompt_ids: list[int]) -> Any:
        import torch

        return self._next_logits(torch.tensor([prompt_ids], dtype=torch.long))

    def step(self, token: int) -> Any:
        import torch

        return self._next_logits(torch.tensor([[token]]))

    def _next_logits(self, ids: Any) -> Any:
        out = self.model(input_ids=ids, use_cache=True, **{self._cache_arg: self._cache})
        return out.logits[0, -1].float().numpy()

    def token_bytes(self, token: int) -> bytes:
        piece = self._bytes.get(token)
        if piece is None:
            piece = self._bytes[token] = self._token_bytes(token)
        return piece

    def _token_bytes(self, token: int) -> bytes:
        if token in self._special:
            return b""  # as decode(..., skip_special_tokens=True)
        text = str(self.tokenizer.convert_ids_to_tokens(token))
        if self._alphabet and token not in self._added and all(c in self._alphabet for c in text):
            return bytes(self._alphabet[c] for c in text)
        byte = _BYTE_TOKEN.fullmatch(text)
        if byte:  # SentencePiece byte fallback
            return bytes([int(byte.group(1), 16)])
        return text.replace("\u2581", " ").encode("utf-8")  # an added token as written, or SentencePiece

    # --- scoring ------------------------------------------------------------------------------

    def answer_nll(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[float, int]:
        """Summed negative log-likelihood of `answer_ids` after `prompt_ids` (for perplexity)."""
        import torch

        with self._lock, torch.inference_mode(), self._adapter_context():
            ids = torch.tensor([list(prompt_ids) + list(answer_ids)])
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
            target = torch.tensor(list(answer_ids))
            nll = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        return float(nll), len(answer_ids)
