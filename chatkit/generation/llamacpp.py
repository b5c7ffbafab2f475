"""The llama.cpp backend (llama-cpp-python): the home of llama_cpp.

Prompts are rendered and tokenized by the Hugging Face tokenizer of the model folder, exactly as on the
`hf` backend, and llama.cpp is fed those token ids; it only runs the network. The decode loop
(sampling, stops, text) is base.py's, the one the `hf` backend uses. PEFT adapters are converted once into llama.cpp LoRA GGUFs (gguf_write.py) and
switched on the loaded model without reloading it; cached keys/values of whole leading prompt batches
shared with the previous prompt are reused (bit-identical to a cold run) and dropped when the adapter
changes.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatkit.errors import AdapterError, ModelError
from chatkit.generation.base import GeneratorBase, eos_ids
from chatkit.generation.gguf_write import ensure_lora_gguf, read_config

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


class LlamaCppGenerator(GeneratorBase):
    """A GGUF model run by llama.cpp, with the interface of HFGenerator as ChatEngine uses it."""

    backend_name = "llamacpp"

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
        self.eos_ids = eos_ids(self.tokenizer, self._declared_eos())
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

    def _declared_eos(self) -> Any:
        """The folder's EOS as transformers reads it: generation_config.json, else config.json."""
        try:
            gen_cfg = json.loads((Path(self.model_path) / "generation_config.json").read_text(encoding="utf-8"))
            return gen_cfg.get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            return self.config.get("eos_token_id")

    @property
    def max_context(self) -> int:
        return self.n_ctx

    def close(self) -> None:
        """Free the llama.cpp model and context (the generator is unusable afterwards)."""
        with self._lock:
            close_llama(self._llm)

    # --- prompts ------------------------------------------------------------------------------

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

    # --- primitives of the decode loop (base.py) ----------------------------------------------

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        with self._lock:
            yield

    def step(self, token: int) -> Any:
        return self._eval([token])

    def _logits(self) -> Any:
        import numpy as np

        ptr = self._lc.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32, copy=True)

    def _eval(self, tokens: Sequence[int]) -> Any:
        self._llm.eval(list(tokens))
        return self._logits()

    def prefill(self, prompt_ids: Sequence[int]) -> Any:
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

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = bytes(self._llm.detokenize([token], special=False))
            self._pieces[token] = piece
        return piece

    # --- checks against transformers and scoring -------------------------------------------

    def position_logits(self, ids: Sequence[int]) -> Any:
        """Next-token logits at every position of `ids` (n x vocab), one decode step each, for checks."""
        import numpy as np

        self.check_fits(len(ids))
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
        self.check_fits(len(prompt_ids) + len(answer))
        nll = 0.0
        with self._lock:
            logits = self.prefill([int(t) for t in prompt_ids])
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
