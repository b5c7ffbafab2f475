"""The Hugging Face transformers backend: the home of torch/transformers/peft for inference."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, ModelError
from chatkit.generation.params import GenParams
from chatkit.generation.sampling import choose, cut_at_stop

Message = dict[str, str]


@dataclass
class StreamStats:
    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stopped: str = ""

    @property
    def tokens_per_s(self) -> float:
        return (self.new_tokens - 1) / self.decode_s if self.decode_s > 0 and self.new_tokens > 1 else 0.0


class HFGenerator:
    """A causal LM loaded once; PEFT adapters are switched on the shared base without reloading it."""

    backend_name = "hf"
    backend_note = ""  # why this backend was chosen (generation/loader.py)

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
        self.eos_ids = self._eos_ids()
        self.adapters: dict[str, str] = {}
        self.active_adapter: str | None = None
        self._lock = threading.Lock()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = self.model.generation_config.eos_token_id
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list):
            ids.update(eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        for special in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            tid = self.tokenizer.convert_tokens_to_ids(special)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid is not None:
                ids.add(tid)
        return ids

    @property
    def max_context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    # --- prompts ------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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
        if name is not None:
            self.model.set_adapter(name)
        self.active_adapter = name

    def _adapter_context(self) -> Any:
        import contextlib

        if self.adapters and self.active_adapter is None:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # --- generation ---------------------------------------------------------------------------

    def stream(self, prompt_ids: Sequence[int], params: GenParams, cancel: threading.Event | None = None,
               stats: StreamStats | None = None) -> Iterator[str]:
        """Yield text pieces as they are decoded. One generation at a time per model."""
        import numpy as np
        import torch
        from transformers import DynamicCache

        stats = stats if stats is not None else StreamStats()
        stats.prompt_tokens = len(prompt_ids)
        rng = np.random.default_rng(params.seed)
        with self._lock, torch.inference_mode(), self._adapter_context():
            ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
            cache = DynamicCache()
            t0 = time.perf_counter()
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
            generated: list[int] = []
            # Which tokens the repetition penalty applies to: the prompt's and the answer's so far.
            seen = np.zeros(out.logits.shape[-1], dtype=bool)
            seen[list(prompt_ids)] = True
            emitted = ""
            t_first = 0.0
            for step in range(params.max_new_tokens):
                token = choose(out.logits[0, -1].float().numpy(), seen, params, rng)
                if step == 0:
                    t_first = time.perf_counter()
                    stats.prefill_s = t_first - t0
                if token in self.eos_ids:
                    stats.stopped = "eos"
                    break
                generated.append(token)
                seen[token] = True
                text = str(self.tokenizer.decode(generated, skip_special_tokens=True))
                if not text.endswith("\ufffd"):
                    piece, emitted = text[len(emitted):], text
                    shown, stopped = cut_at_stop(emitted, piece, params.stop)
                    if shown:
                        yield shown
                    if stopped:
                        stats.stopped = "stop"
                        break
                if cancel is not None and cancel.is_set():
                    stats.stopped = "cancelled"
                    break
                out = self.model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
            else:
                stats.stopped = "length"
            stats.new_tokens = len(generated) + (1 if stats.stopped == "eos" else 0)
            stats.decode_s = time.perf_counter() - t_first if t_first else 0.0

    def generate(self, prompt_ids: Sequence[int], params: GenParams) -> str:
        return "".join(self.stream(prompt_ids, params))

    def answer_nll(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[float, int]:
        """Summed negative log-likelihood of `answer_ids` after `prompt_ids` (for perplexity)."""
        import torch

        with self._lock, torch.inference_mode(), self._adapter_context():
            ids = torch.tensor([list(prompt_ids) + list(answer_ids)])
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
            target = torch.tensor(list(answer_ids))
            nll = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        return float(nll), len(answer_ids)

