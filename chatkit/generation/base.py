"""What a dialogue-model generator is, and the one decode loop every backend shares.

A backend (hf.py, llamacpp.py) provides primitives only: logits after a prompt (`prefill`), logits after one
more token (`step`), the bytes of a token, a `decoding()` context that holds its lock, and adapters.
`GeneratorBase.stream` turns those into text: sampling, repetition penalty, EOS, stop strings, cancel,
context length, timing and incremental UTF-8 decoding.
"""

from __future__ import annotations

import codecs
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatkit.errors import InputError
from chatkit.generation.sampling import choose, shown_until

if TYPE_CHECKING:
    from chatkit.config import GenerationConfig

Message = dict[str, str]
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>")


@dataclass(frozen=True)
class GenParams:
    """How one answer is decoded."""

    max_new_tokens: int = 200
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = field(default=())
    seed: int = 0
    copy_bias: float = 0.0  # added to the logits of every token the prompt contains

    @classmethod
    def from_settings(cls, gen: GenerationConfig) -> GenParams:
        return cls(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                   repetition_penalty=gen.repetition_penalty, stop=tuple(gen.stop), seed=gen.seed,
                   copy_bias=gen.copy_bias)


@dataclass
class StreamStats:
    """Filled in by `stream`; `stopped` is eos | stop | length | cancelled ('' when abandoned or failed)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stopped: str = ""

    @property
    def tokens_per_s(self) -> float:
        return (self.new_tokens - 1) / self.decode_s if self.decode_s > 0 and self.new_tokens > 1 else 0.0


class Generator(Protocol):
    """A loaded dialogue model, as the engine, server, evaluation and CLI use it."""

    model_id: str
    model_path: str
    dtype: str
    backend_name: str
    backend_note: str
    tokenizer: Any
    active_adapter: str | None

    @property
    def max_context(self) -> int: ...

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]: ...
    def count_tokens(self, text: str) -> int: ...
    def stream(self, prompt_ids: Sequence[int], params: GenParams, cancel: threading.Event | None = None,
               stats: StreamStats | None = None) -> Iterator[str]: ...
    def generate(self, prompt_ids: Sequence[int], params: GenParams) -> str: ...
    def answer_nll(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[float, int]: ...
    def load_adapter(self, name: str, path: Path) -> None: ...
    def set_adapter(self, name: str | None) -> None: ...
    def close(self) -> None: ...


def eos_ids(tokenizer: Any, declared: int | list[int] | None) -> frozenset[int]:
    """Tokens that end an answer: the model's declared EOS, the tokenizer's, and known end-of-turn markers."""
    ids: set[int] = set()
    if isinstance(declared, int):
        ids.add(declared)
    elif isinstance(declared, list):
        ids.update(int(e) for e in declared)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for special in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(special)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return frozenset(ids)


class GeneratorBase(ABC):
    """The shared half of every backend: prompts, the decode loop and the Generator attributes."""

    backend_name = ""
    backend_note = ""  # why this backend was chosen (generation/loader.py)
    model_id: str
    model_path: str
    dtype: str
    tokenizer: Any
    active_adapter: str | None
    eos_ids: frozenset[int]

    # --- what a backend provides ----------------------------------------------------------------

    @property
    @abstractmethod
    def max_context(self) -> int: ...

    @abstractmethod
    def decoding(self) -> contextlib.AbstractContextManager[None]:
        """Held for a whole answer: one generation at a time per model, and the model's inference state."""

    @abstractmethod
    def prefill(self, prompt_ids: list[int]) -> Any:
        """Next-token logits (a writable 1-D float numpy array) after the whole prompt; inside decoding()."""

    @abstractmethod
    def step(self, token: int) -> Any:
        """Next-token logits after feeding one more token; inside decoding()."""

    @abstractmethod
    def token_bytes(self, token: int) -> bytes:
        """The UTF-8 bytes a token adds to the text (b'' for special tokens); may be part of a character."""

    @abstractmethod
    def answer_nll(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[float, int]: ...

    @abstractmethod
    def load_adapter(self, name: str, path: Path) -> None: ...

    @abstractmethod
    def set_adapter(self, name: str | None) -> None: ...

    def close(self) -> None:
        """Free the model now; a backend whose memory Python's garbage collector frees has nothing to do."""
        return None

    # --- prompts ----------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def check_fits(self, n: int) -> None:
        if n < 1:
            raise InputError("the prompt is empty", "render a prompt first")
        if n >= self.max_context:
            raise InputError(f"the prompt has {n} tokens, more than fit the model context of {self.max_context}",
                             "raise generation.context_tokens, or lower engine.passages")

    # --- the decode loop --------------------------------------------------------------------------

    def stream(self, prompt_ids: Sequence[int], params: GenParams, cancel: threading.Event | None = None,
               stats: StreamStats | None = None) -> Iterator[str]:
        """Yield text pieces as they are decoded. One generation at a time per model."""
        import numpy as np

        stats = stats if stats is not None else StreamStats()
        prompt = [int(t) for t in prompt_ids]
        stats.prompt_tokens = len(prompt)
        self.check_fits(len(prompt))
        rng = np.random.default_rng(params.seed)
        with self.decoding():
            t0 = time.perf_counter()
            logits = self.prefill(prompt)
            # Which tokens the repetition penalty applies to: the prompt's and the answer's so far.
            seen = np.zeros(len(logits), dtype=bool)
            seen[prompt] = True
            in_prompt = seen.copy() if params.copy_bias else None
            utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generated: list[int] = []
            emitted, shown = "", 0  # the answer text so far, and how much of it was yielded
            t_first = 0.0
            try:
                for n in range(params.max_new_tokens):
                    if in_prompt is not None:  # favour copying the passages' words over the model's own
                        logits[in_prompt] += params.copy_bias
                    token = choose(logits, seen, params, rng)
                    if n == 0:
                        t_first = time.perf_counter()
                        stats.prefill_s = t_first - t0
                    if token in self.eos_ids:
                        stats.stopped = "eos"
                        break
                    generated.append(token)
                    seen[token] = True
                    piece = utf8.decode(self.token_bytes(token))  # '' while a character is still incomplete
                    if piece:
                        emitted += piece
                        end, stopped = shown_until(emitted, shown, params.stop)
                        if end > shown:
                            yield emitted[shown:end]
                            shown = end
                        if stopped:
                            stats.stopped = "stop"
                            break
                    if cancel is not None and cancel.is_set():
                        stats.stopped = "cancelled"
                        break
                    if len(prompt) + len(generated) - 1 >= self.max_context:  # no room to feed the newest token
                        stats.stopped = "length"
                        break
                    logits = self.step(token)
                else:
                    stats.stopped = "length"
                if stats.stopped != "stop" and shown < len(emitted):
                    yield emitted[shown:]  # held back as the possible start of a stop string that never came
            finally:  # also when the reader abandons the stream: the counts so far stay true
                stats.new_tokens = len(generated) + (1 if stats.stopped == "eos" else 0)
                stats.decode_s = time.perf_counter() - t_first if t_first else 0.0

    def generate(self, prompt_ids: Sequence[int], params: GenParams) -> str:
        return "".join(self.stream(prompt_ids, params))
