"""Typed settings: defaults with help text, YAML files, `--set section.key=value`, the data dir."""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatkit.errors import ConfigError

PACKAGED_EMBEDDER = "packaged:all-MiniLM-L6-v2"
PACKAGED_DIALOGUE = "packaged:SmolLM2-135M-Instruct"


# Activations cost ~2.3 MB per token for the 135M model in training: past this a row's step needs over ~1.2 GB.
CHECKPOINT_ABOVE_TOKENS = 512


def _f(default: Any, help: str) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelsConfig:
    embedder: str = _f(PACKAGED_EMBEDDER, "Sentence-Transformers model: 'packaged:all-MiniLM-L6-v2', a local folder, or a hub id (needs allow_online).")
    dialogue: str = _f(PACKAGED_DIALOGUE, "Dialogue model: 'packaged:SmolLM2-135M-Instruct', a local Hugging Face model folder, or a hub id (needs allow_online).")
    allow_online: bool = _f(False, "Let Hugging Face libraries reach the network. Off: HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1.")
    dtype: str = _f("auto", "Dialogue model dtype: auto (measured on this CPU), float32 or bfloat16.")
    threads: int = _f(0, "CPU threads for the dialogue model (torch, or llama.cpp on the llamacpp backend); 0 keeps torch's default, or every available core for llama.cpp.")


@dataclass
class RetrievalConfig:
    mode: str = _f("hybrid", "Search mode: dense, bm25 or hybrid.")
    k: int = _f(5, "Number of passages returned by search and given to the model.")
    chunk_tokens: int = _f(256, "Chunk size in embedder tokens.")
    chunk_overlap: int = _f(32, "Overlap between neighbouring chunks in embedder tokens.")
    fusion: str = _f("mix", "How hybrid mode fuses BM25 and dense: mix (min-max normalised scores, weighted) or rrf (reciprocal rank fusion); mix won on SciFact train queries (docs/RESULTS.md).")
    rrf_k: int = _f(60, "Reciprocal-rank-fusion constant.")
    dense_weight: float = _f(0.6, "Weight of the dense score when fusion is 'mix' (BM25 gets 1 - this); 0.6 chosen on SciFact train queries.")
    candidates: int = _f(100, "How many candidates each retriever contributes before fusion.")
    ann_threshold: int = _f(50000, "Vector count above which the FAISS index switches from exact (flat) to HNSW.")
    hnsw_m: int = _f(32, "HNSW graph degree.")
    hnsw_ef_search: int = _f(128, "HNSW search breadth (higher: better recall, slower).")
    batch_size: int = _f(64, "Embedding batch size.")


@dataclass
class GenerationConfig:
    backend: str = _f("auto", "Generation backend: hf (transformers), llamacpp (llama.cpp, the `llamacpp` extra; runs the model's GGUF), or auto (llamacpp when llama-cpp-python is installed and the model has a GGUF, else hf).")
    max_new_tokens: int = _f(200, "Longest answer in tokens.")
    temperature: float = _f(0.0, "Sampling temperature; 0 means greedy decoding.")
    top_p: float = _f(1.0, "Nucleus sampling threshold (used when temperature > 0).")
    repetition_penalty: float = _f(1.1, "Penalty for repeating tokens (1.0 = none).")
    context_tokens: int = _f(2048, "Prompt + answer budget in model tokens.")
    seed: int = _f(0, "Random seed for sampling.")
    copy_bias: float = _f(0.0, "Added to the logits of every token of the prompt, so a small model copies the passages' words rather than its own (0 = off).")
    stop: list[str] = _f(["\nQuestion:", "\nPassages:"], "Stop strings: the answer ends before the first one (the defaults end an answer that runs on into a new question of the prompt format).")


@dataclass
class EngineConfig:
    collections: list[str] = _f(["curriculum", "handbook"], "Collections searched by ask, chat and serve.")
    passages: int = _f(4, "Passages put into the prompt.")
    evidence_sentences: int = _f(3, "Sentences of each passage the dialogue model sees: those closest to the question, in reading order (0 = whole passages). The shipped tutor was trained on prompts made this way.")
    abstain_threshold: float = _f(0.15, "Refuse when the best passage similarity is below this (chosen on corpora/qa/dev.jsonl; `chatkit eval calibrate` re-chooses it for your documents).")
    min_question_coverage: float = _f(0.3, "Refuse when less than this share of the question's terms (IDF-weighted) occurs in the passages (chosen on corpora/qa/dev.jsonl).")
    unknown_term_similarity: float = _f(0.5, "Refuse a question with a term no document contains (typos aside) unless the best passage similarity reaches this (chosen on corpora/qa/dev.jsonl).")
    max_question_chars: int = _f(4000, "Longer questions are trimmed with a warning.")
    adapter: str = _f("", "Adapter used by default ('' = the promoted one, 'base' = none).")
    answer_style: str = _f("extractive", "extractive (cited passage sentences; the best measured with the base model), generative, or auto (generative, falling back to extractive when the answer cites nothing usable; for fine-tuned adapters).")


@dataclass
class TrainingConfig:
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r).")
    lora_dropout: float = _f(0.0, "LoRA dropout. 0 lets PEFT skip the dropout copy of every adapted input: ~25 % faster and "
                                    "~1 GB less peak memory per 1,000-token row on a CPU.")
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "Modules that get LoRA matrices.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    epochs: float = _f(2.0, "Training epochs.")
    batch_size: int = _f(1, "Per-device batch size. On a CPU, 1 with gradient accumulation is fastest: no padding, small activations.")
    grad_accum: int = _f(4, "Gradient accumulation steps (effective batch = batch_size x grad_accum x devices).")
    max_length: int = _f(1024, "Longest training row in model tokens; passages are trimmed first, never the answer.")
    warmup_ratio: float = _f(0.05, "Share of steps spent warming the learning rate up.")
    seed: int = _f(0, "Training seed.")
    packing: bool = _f(False, "Pack several short rows into one sequence.")
    gradient_checkpointing: str = _f("auto", "Recompute activations in the backward pass instead of keeping them: auto "
                                            f"(on when the longest training row is over {CHECKPOINT_ABOVE_TOKENS} tokens), true or false. "
                                            "On a CPU with the 135M model it cuts the peak of 1,024-token rows from ~4.4 to ~2.6 GB "
                                            "for ~28 % fewer tokens/s.")
    quantization: str = _f("none", "none or nf4 (QLoRA, needs a CUDA GPU and bitsandbytes).")
    bf16: str = _f("auto", "bf16 autocast: auto, true or false.")
    optim: str = _f("adamw_torch", "Optimizer name as in transformers (e.g. paged_adamw_8bit on GPU).")
    eval_every_epoch: bool = _f(True, "Compute validation loss and perplexity each epoch.")
    val_fraction: float = _f(0.1, "Share of rows held out for validation when no --val file is given (used from 20 rows; 0 = none).")
    group_by_length: bool = _f(True, "Batch rows of similar length together: less padding, more tokens/s.")
    pad_to_multiple_of: int = _f(64, "Pad each batch to a multiple of this many tokens (0 = no padding). On a CPU every new "
                                     "sequence length compiles new oneDNN kernels, which costs time and memory; a few lengths are reused.")
    malloc_arenas: int = _f(1, "glibc malloc arenas while training on a CPU (0 = glibc's default, one per thread). "
                                 "One arena lowers peak memory at no measured cost in speed.")
    logging_steps: int = _f(5, "Optimizer steps between loss lines in the training log.")


@dataclass
class ServerConfig:
    host: str = _f("127.0.0.1", "Address to bind; anything but loopback needs an API key.")
    port: int = _f(8000, "Port to bind.")
    api_key: str = _f("", "Bearer key required by the API ('' = none, loopback only).")
    queue_size: int = _f(16, "Requests waiting for the model before answering 503.")
    max_body_bytes: int = _f(1_000_000, "Largest request body accepted; bigger ones get 413.")


@dataclass
class Settings:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)


def all_keys(settings: Settings | None = None) -> dict[str, tuple[Any, str]]:
    """Every dotted key with its current value and help text."""
    settings = settings or Settings()
    out: dict[str, tuple[Any, str]] = {}
    for section in dataclasses.fields(settings):
        sub = getattr(settings, section.name)
        for f in dataclasses.fields(sub):
            out[f"{section.name}.{f.name}"] = (getattr(sub, f.name), f.metadata.get("help", ""))
    return out


def _nearest(name: str, options: typing.Iterable[str]) -> str:
    options = list(options)
    # Match on the leaf too, so 'chunk_size' finds 'retrieval.chunk_tokens' and 'k' finds 'retrieval.k'.
    leaf = {o.rsplit(".", 1)[-1]: o for o in options}
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not match:
        hit = difflib.get_close_matches(name.rsplit(".", 1)[-1], list(leaf), n=1, cutoff=0.0)
        match = [leaf[hit[0]]] if hit else []
    if not match:
        return "run `chatkit config show --keys` for the valid keys"
    return f"did you mean '{match[0]}'? `chatkit config show --keys` lists all"


def _coerce(key: str, value: Any, target: Any) -> Any:
    origin = typing.get_origin(target)
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
    elif target is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif target is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif target is str:
        if isinstance(value, bool):  # YAML reads `true` as a bool; keys like training.bf16 take the word
            return str(value).lower()
        if isinstance(value, str | int | float):
            return str(value)
    elif origin is list:
        (item,) = typing.get_args(target)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [_coerce(key, v, item) for v in value]
    elif isinstance(target, types.UnionType):
        for t in typing.get_args(target):
            try:
                return _coerce(key, value, t)
            except ConfigError:
                continue
    name = getattr(target, "__name__", str(target))
    raise ConfigError(f"config key '{key}' wants a {name}, got {value!r}", "fix the value in your config file or --set")


def set_key(settings: Settings, key: str, value: Any) -> None:
    """Set one dotted key, refusing unknown keys (with the nearest valid one) and mistyped values."""
    known = all_keys()
    if key not in known:
        raise ConfigError(f"unknown config key '{key}'", _nearest(key, known))
    section_name, name = key.split(".", 1)
    section = getattr(settings, section_name)
    hints = typing.get_type_hints(type(section))
    setattr(section, name, _coerce(key, value, hints[name]))


def apply_mapping(settings: Settings, data: Any, origin: str) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections", "see configs/default.yaml")
    sections = [f.name for f in dataclasses.fields(Settings)]
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown config section '{section}'", _nearest(str(section), sections))
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: section '{section}' must be a mapping", "see configs/default.yaml")
        for name, value in values.items():
            set_key(settings, f"{section}.{name}", value)


def load_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "check the path given to --config")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}", "fix the file's syntax") from None


def parse_override(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise ConfigError(f"--set wants key=value, got '{text}'", "e.g. --set retrieval.k=8")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_settings(config_files: typing.Sequence[Path] = (), overrides: typing.Sequence[str] = (), home: Path | None = None) -> Settings:
    """Defaults, then `<home>/config.yaml` if present, then each --config file, then each --set."""
    settings = Settings()
    files = []
    if home is not None and (home / "config.yaml").is_file():
        files.append(home / "config.yaml")
    files.extend(Path(p) for p in config_files)
    for path in files:
        apply_mapping(settings, load_yaml(path), str(path))
    for text in overrides:
        key, value = parse_override(text)
        set_key(settings, key, value)
    validate(settings)
    return settings


_CHOICES = {
    "retrieval.mode": ("dense", "bm25", "hybrid"),
    "retrieval.fusion": ("rrf", "mix"),
    "generation.backend": ("auto", "hf", "llamacpp"),
    "engine.answer_style": ("auto", "generative", "extractive"),
    "models.dtype": ("auto", "float32", "bfloat16"),
    "training.quantization": ("none", "nf4"),
    "training.bf16": ("auto", "true", "false"),
    "training.gradient_checkpointing": ("auto", "true", "false"),
}


def validate(settings: Settings) -> None:
    values = all_keys(settings)
    for key, choices in _CHOICES.items():
        value = str(values[key][0]).lower()
        if value not in choices:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got '{value}'", f"e.g. --set {key}={choices[0]}")
    r = settings.retrieval
    if r.chunk_tokens < 16 or not 0 <= r.chunk_overlap < r.chunk_tokens:
        raise ConfigError("retrieval.chunk_tokens must be >= 16 and chunk_overlap in [0, chunk_tokens)", "e.g. 256 and 32")
    if r.k < 1:
        raise ConfigError("retrieval.k must be at least 1", "e.g. --set retrieval.k=5")
    srv = settings.server
    if not 0 < srv.port < 65536:
        raise ConfigError(f"server.port must be 1-65535, got {srv.port}", "e.g. --set server.port=8000")
    if srv.queue_size < 0 or srv.max_body_bytes < 1024:
        raise ConfigError("server.queue_size must be >= 0 and server.max_body_bytes >= 1024", "e.g. 16 and 1000000")


def to_dict(settings: Settings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


# --- the data dir -------------------------------------------------------------------------


def default_home() -> Path:
    env = os.environ.get("CHATKIT_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "chatkit"


@dataclass(frozen=True)
class Paths:
    """Where everything lives under the data dir."""

    home: Path

    @property
    def collections(self) -> Path:
        return self.home / "collections"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def adapters(self) -> Path:
        return self.home / "adapters"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def conversations_db(self) -> Path:
        return self.home / "conversations.sqlite"

    def ensure(self) -> Paths:
        for p in (self.home, self.collections, self.models, self.adapters, self.cache, self.reports):
            p.mkdir(parents=True, exist_ok=True)
        return self


def apply_offline(settings: Settings) -> None:
    """Hugging Face libraries read these at import time, so call this before importing them."""
    if settings.models.allow_online:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ.pop(var, None)
    else:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ[var] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # chatkit draws its own progress; the libraries' tqdm bars and warnings would garble it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
