"""The llama.cpp backend (llama-cpp-python): the home of llama_cpp.

Prompts are rendered and tokenized by the Hugging Face tokenizer of the model folder, exactly as on the
`hf` backend, and llama.cpp is fed those token ids; it only runs the network. Sampling (greedy,
temperature, top-p, repetition penalty over prompt and answer) is the `hf` backend's, done on the
logits in numpy. PEFT adapters are converted once into llama.cpp LoRA GGUFs (gguf_write.py) and
switched on the loaded model without reloading it; cached keys/values of whole leading prompt batches
shared with the previous prompt are reused (bit-identical to a cold run) and dropped when the adapter
changes.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import ctypes
import json
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, InputError, ModelError
from chatkit.generation.gguf_write import ensure_lora_gguf, read_config
from chatkit.generation.hf import StreamStats
from chatkit.generation.params import GenParams
from chatkit.generation.sampling import choose, cut_at_stop

Message = dict[str, str]
HINT_HF = "use the transformers backend: --set generation.backend=hf"


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_PROBE = (
    "import sys, llama_cpp\n"
    "t = int(sys.argv[2])\n"
    "llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_batch=64, n_threads=t, n_threads_batch=t, verbose=False)\n"
    "llm.eval([0, 1, 2, 3] * 8)\n"
)
_probed: dict[str, bool] = {}
_params_lock = threading.Lock()


def extra_buffers_ok(gguf_path: str, cache_dir: Path | None = None, threads: int = 1) -> bool:
    """Whether llama.cpp's extra CPU buffer types (AMX tiles, repacked weights) work here for this model.

    A CPU can list AMX while the virtual machine it runs in does not enable it: llama.cpp's AMX matmul
    then dies with a general protection fault on the first batch of more than one token (seen on a
    Sapphire Rapids Firecracker VM). Only quantized weights take that path, so on CPUs that list AMX a
    child process runs a small batch of this GGUF once; the verdict is cached per CPU, llama-cpp-python
    version, file and thread count.
    """
    from chatkit.generation.device import cpu_flags, cpu_name

    if not {"amx_tile", "amx_int8", "amx_bf16"} & cpu_flags():
        return True
    import subprocess
    import sys
    from importlib.metadata import version

    path = Path(gguf_path).resolve()
    st = path.stat()
    key = f"{cpu_name()}|llama-cpp-python {version('llama-cpp-python')}|{path}|{st.st_size}|{st.st_mtime_ns}|{threads} threads"
    if key in _probed:
        return _probed[key]
    cache = (cache_dir / "llamacpp-cpu.json") if cache_dir else None
    saved: dict[str, Any] = {}
    if cache and cache.is_file():
        try:
            saved = dict(json.loads(cache.read_text()).get("extra_buffers", {}))
        except (ValueError, AttributeError, TypeError):
            saved = {}
    if key in saved:
        _probed[key] = bool(saved[key])
        return _probed[key]
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(threads)], capture_output=True, timeout=300)
        ok = probe.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    _probed[key] = ok
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        saved[key] = ok
        cache.write_text(json.dumps({"extra_buffers": saved}, indent=1))
    return ok


def open_llama(gguf_path: str, extra_buffers: bool = True, **kwargs: Any) -> Any:
    """llama_cpp.Llama(gguf_path, **kwargs), with llama.cpp's extra CPU buffer types off when asked.

    llama-cpp-python does not expose llama_model_params.use_extra_bufts, so its default-params factory
    is wrapped for the duration of the load.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as low

    if extra_buffers:
        return llama_cpp.Llama(model_path=str(gguf_path), **kwargs)
    with _params_lock:
        original = low.llama_model_default_params

        def without_extra() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = without_extra
        try:
            return llama_cpp.Llama(model_path=str(gguf_path), **kwargs)
        finally:
            low.llama_model_default_params = original


_open_models: weakref.WeakSet[Any] = weakref.WeakSet()


def close_llama(llm: Any) -> None:
    """Free a llama_cpp.Llama now. Its close() points stdout/stderr at /dev/null for a moment, so pending
    output is flushed first; left to the garbage collector that can happen in the middle of someone's print."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        llm.close()
    _open_models.discard(llm)


@atexit.register
def _close_open_models() -> None:
    # Closed before interpreter teardown: llama-cpp-python's finalizers fail noisily once its module is gone.
    for llm in list(_open_models):
        close_llama(llm)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class LlamaCppGenerator:
    """A GGUF model run by llama.cpp, with the interface of HFGenerator as ChatEngine uses it."""

    backend_name = "llamacpp"
    backend_note = ""

    def __init__(self, model_path: str, gguf_path: str, threads: int = 0, n_ctx: int = 2048,
                 cache_dir: Path | None = None, n_batch: int = 512) -> None:
        try:
            import llama_cpp
        except (ImportError, OSError, RuntimeError) as exc:  # a missing package, or a library that will not load
            raise ModelError(f"the llama.cpp backend needs llama-cpp-python, which cannot be imported ({first_line(exc)})",
                             "pip install -e '.[llamacpp]' (compiles llama.cpp), or --set generation.backend=hf") from None
        from transformers import AutoTokenizer

        self._lc = llama_cpp
        self.model_path = model_path
        self.model_id = model_path
        self.gguf_path = gguf_path
        self.cache_dir = cache_dir
        self.threads = threads if threads > 0 else available_cores()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the tokenizer of {model_path}: {first_line(exc)}",
                             "check models.dialogue points at a Hugging Face causal-LM folder") from None
        if self.tokenizer.chat_template is None:
            raise ModelError(f"model at {model_path} has no chat template", "use an instruct/chat model folder")
        self.config = read_config(Path(model_path))
        trained = int(self.config.get("max_position_embeddings") or 2048)
        self.n_ctx = min(n_ctx, trained) if n_ctx > 0 else trained
        name = Path(gguf_path).name
        if not Path(gguf_path).is_file():
            raise ModelError(f"GGUF file not found: {gguf_path}", HINT_HF)
        self.extra_buffers = extra_buffers_ok(str(gguf_path), cache_dir, self.threads)
        try:
            self._llm = open_llama(str(gguf_path), self.extra_buffers, n_ctx=self.n_ctx, n_batch=min(n_batch, self.n_ctx),
                                   n_threads=self.threads, n_threads_batch=self.threads, verbose=False)
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError on a bad file
            raise ModelError(f"llama.cpp cannot load {name}: {first_line(exc)} (damaged, or not a GGUF model)", HINT_HF) from None
        _open_models.add(self._llm)
        try:
            self._check_matches(name)
        except ModelError:
            close_llama(self._llm)
            raise
        self.n_vocab = int(self._llm.n_vocab())
        self.dtype = self._file_type()
        self.eos_ids = self._eos_ids()
        self.adapters: dict[str, str] = {}
        self._handles: dict[str, Any] = {}
        self.active_adapter: str | None = None
        self._pieces: dict[int, bytes] = {}
        self._prefilled = 0  # length of the prompt whose keys/values start the cache
        self._lock = threading.RLock()

    # --- checks -----------------------------------------------------------------------------------

    def _check_matches(self, name: str) -> None:
        """The GGUF must be the folder's model: same architecture, sizes and vocabulary."""
        meta = self._llm.metadata or {}
        arch = meta.get("general.architecture", "?")
        folder = Path(self.model_path).name
        if arch != "llama" or self.config.get("model_type") != "llama":
            raise ModelError(f"{name} is a '{arch}' model, but the llama.cpp backend runs Llama models whose folder "
                             f"({folder}, {self.config.get('model_type')}) matches the GGUF", HINT_HF)
        cfg = self.config
        pairs = (("llama.block_count", "num_hidden_layers"), ("llama.embedding_length", "hidden_size"),
                 ("llama.attention.head_count", "num_attention_heads"))
        for key, hf_key in pairs:
            if str(meta.get(key)) != str(cfg.get(hf_key)):
                raise ModelError(f"{name} does not match the model folder {folder} ({key} {meta.get(key)} vs {hf_key} {cfg.get(hf_key)})",
                                 f"put the GGUF of the same weights in the folder, or {HINT_HF}")
        n_vocab = int(self._llm.n_vocab())
        vocab = self._lc.llama_model_get_vocab(self._llm.model)
        step = max(1, n_vocab // 97)
        for tid in list(range(0, min(n_vocab, len(self.tokenizer)), step)) + [int(self.tokenizer.eos_token_id or 0)]:
            ours = self.tokenizer.convert_ids_to_tokens(tid)
            theirs = self._lc.llama_vocab_get_text(vocab, tid)
            theirs = theirs.decode("utf-8", "replace") if isinstance(theirs, bytes) else str(theirs)
            if ours != theirs:
                raise ModelError(f"the vocabulary of {name} differs from the tokenizer of {folder} (token {tid}: {theirs!r} vs {ours!r})",
                                 f"put the GGUF of the same model in the folder, or {HINT_HF}")

    def _file_type(self) -> str:
        ftype = (self._llm.metadata or {}).get("general.file_type")
        try:
            import gguf

            return str(gguf.LlamaFileType(int(ftype or 0)).name).removeprefix("MOSTLY_").removeprefix("ALL_")
        except (ValueError, ImportError):
            return f"gguf type {ftype}"

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        try:
            gen_cfg = json.loads((Path(self.model_path) / "generation_config.json").read_text(encoding="utf-8"))
            eos = gen_cfg.get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            eos = self.config.get("eos_token_id")
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list):
            ids.update(int(e) for e in eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        for special in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            tid = self.tokenizer.convert_tokens_to_ids(special)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return ids

    @property
    def max_context(self) -> int:
        return self.n_ctx

    def close(self) -> None:
        """Free the llama.cpp model and context (the generator is unusable afterwards)."""
        with self._lock:
            close_llama(self._llm)

    # --- prompts ------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def llama_tokenize(self, text: str) -> list[int]:
        """llama.cpp's own tokenization of `text` (special tokens parsed), for checks against render()."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    # --- adapters -----------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        if name in self.adapters:
            return
        if self.cache_dir is None:
            raise AdapterError("the llama.cpp backend has no cache folder for converted adapters", HINT_HF)
        lora = ensure_lora_gguf(Path(path), Path(self.model_path), self.cache_dir)
        with self._lock:
            handle = self._lc.llama_adapter_lora_init(self._llm.model, str(lora).encode("utf-8"))
            if not handle:
                raise AdapterError(f"llama.cpp cannot load adapter '{name}' (converted to {lora.name})",
                                   f"the adapter may be made for another base model; {HINT_HF}")
            self._handles[name] = handle
            self.adapters[name] = str(path)
        self.set_adapter(name)

    def set_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise AdapterError(f"adapter '{name}' is not loaded", "load it first")
        with self._lock:
            if name == self.active_adapter:
                return
            ctx = self._llm.ctx
            if name is None:
                rc = self._lc.llama_set_adapters_lora(ctx, None, 0, None)
            else:
                handles = (self._lc.llama_adapter_lora_p_ctypes * 1)(self._handles[name])
                scales = (ctypes.c_float * 1)(1.0)
                rc = self._lc.llama_set_adapters_lora(ctx, handles, 1, scales)
            if rc:
                raise AdapterError(f"llama.cpp refused adapter '{name}' (code {rc})", HINT_HF)
            self._reset()  # the cached keys/values were computed with the previous weights
            self.active_adapter = name

    # --- evaluation ---------------------------------------------------------------------------

    def _logits(self) -> Any:
        import numpy as np

        ptr = self._lc.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32, copy=True)

    def _eval(self, tokens: Sequence[int]) -> Any:
        self._llm.eval(list(tokens))
        return self._logits()

    def _prefill(self, prompt_ids: Sequence[int]) -> Any:
        """Logits after the prompt, reusing cached keys/values of whole leading batches it shares with the last prompt.

        Only full n_batch-aligned batches are reused: they were computed from the same tokens in a batch of
        the same size, so the result is bit-identical to a cold run and answers do not depend on history.
        """
        llm = self._llm
        n_batch = int(llm.n_batch)
        common = 0
        for a, b in zip(llm.input_ids[: self._prefilled], prompt_ids, strict=False):
            if int(a) != int(b):
                break
            common += 1
        reuse = common // n_batch * n_batch
        if reuse >= len(prompt_ids):
            reuse -= n_batch
        llm.n_tokens = max(reuse, 0)  # eval() drops the cache past this point
        self._prefilled = 0
        logits = self._eval(prompt_ids[llm.n_tokens:])
        self._prefilled = len(prompt_ids)
        return logits

    def _reset(self) -> None:
        self._llm.reset()
        self._prefilled = 0

    def _check_fits(self, n: int) -> None:
        if n < 1:
            raise InputError("the prompt is empty", "render a prompt first")
        if n >= self.n_ctx:
            raise InputError(f"the prompt has {n} tokens, more than fit the model context of {self.n_ctx}",
                             "raise generation.context_tokens, or lower engine.passages")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = bytes(self._llm.detokenize([token], special=False))
            self._pieces[token] = piece
        return piece

    # --- generation ---------------------------------------------------------------------------

    def stream(self, prompt_ids: Sequence[int], params: GenParams, cancel: threading.Event | None = None,
               stats: StreamStats | None = None) -> Iterator[str]:
        """Yield text pieces as they are decoded. One generation at a time per model."""
        import numpy as np

        stats = stats if stats is not None else StreamStats()
        prompt = [int(t) for t in prompt_ids]
        stats.prompt_tokens = len(prompt)
        self._check_fits(len(prompt))
        rng = np.random.default_rng(params.seed)
        with self._lock:
            t0 = time.perf_counter()
            logits = self._prefill(prompt)
            seen = np.zeros(self.n_vocab, dtype=bool)
            seen[prompt] = True
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generated: list[int] = []
            emitted = ""
            t_first = 0.0
            for step in range(params.max_new_tokens):
                token = choose(logits, seen, params, rng)
                if step == 0:
                    t_first = time.perf_counter()
                    stats.prefill_s = t_first - t0
                if token in self.eos_ids:
                    stats.stopped = "eos"
                    break
                generated.append(token)
                seen[token] = True
                piece = decoder.decode(self._piece(token))
                if piece:
                    emitted += piece
                    shown, stopped = cut_at_stop(emitted, piece, params.stop)
                    if shown:
                        yield shown
                    if stopped:
                        stats.stopped = "stop"
                        break
                if cancel is not None and cancel.is_set():
                    stats.stopped = "cancelled"
                    break
                if self._llm.n_tokens >= self.n_ctx:
                    stats.stopped = "length"
                    break
                logits = self._eval([token])
            else:
                stats.stopped = "length"
            stats.new_tokens = len(generated) + (1 if stats.stopped == "eos" else 0)
            stats.decode_s = time.perf_counter() - t_first if t_first else 0.0

    def generate(self, prompt_ids: Sequence[int], params: GenParams) -> str:
        return "".join(self.stream(prompt_ids, params))

    def position_logits(self, ids: Sequence[int]) -> Any:
        """Next-token logits at every position of `ids` (n x vocab), one decode step each, for checks."""
        import numpy as np

        self._check_fits(len(ids))
        with self._lock:
            self._reset()
            rows = [self._eval([int(t)]) for t in ids]
            self._reset()
        return np.stack(rows)

    def answer_nll(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[float, int]:
        """Summed negative log-likelihood of `answer_ids` after `prompt_ids` (for perplexity)."""
        import numpy as np

        answer = [int(t) for t in answer_ids]
        if not answer:
            return 0.0, 0
        self._check_fits(len(prompt_ids) + len(answer))
        nll = 0.0
        with self._lock:
            logits = self._prefill([int(t) for t in prompt_ids])
            for i, tok in enumerate(answer):
                z = logits.astype(np.float64)
                top = z.max()
                nll += float(top + np.log(np.exp(z - top).sum()) - z[tok])
                if i + 1 < len(answer):
                    logits = self._eval([tok])
        return nll, len(answer)



def top1_agreement(a: Sequence[Any], b: Sequence[Any]) -> tuple[float, int]:
    """Share of positions where two (n x vocab) logit arrays pick the same next token, and the count."""
    import numpy as np

    same = total = 0
    for x, y in zip(a, b, strict=True):
        n = min(len(x), len(y))
        same += int((np.asarray(x[:n]).argmax(-1) == np.asarray(y[:n]).argmax(-1)).sum())
        total += n
    return (same / total if total else 0.0), total
