"""Typed settings: defaults with help text, YAML files, `--set section.key=value`, the data dir."""

from __future__ import annotations

import dataclasses
import difflib
import math
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


# numpy's legacy seeding (which transformers' set_seed calls) takes at most 32 bits.
SEED_MAX = 2**32 - 1


def show_number(value: float) -> str:
    """A number as a user would type it: 2 rather than 2.0, 1e-05, inf, nan."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def _shown(value: Any) -> str:
    """A value for a one-line error: numbers as typed, anything else quoted (escapes keep it one line), cut short."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return show_number(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Bounds:
    """The interval a number must lie in (ge/le inclusive, gt/lt exclusive; None: open on that side). Always finite.

    `or_zero`: 0 is allowed too, as an "off" value below the interval.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    or_zero: bool = False

    def admits(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.or_zero and value == 0:
            return True
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def describe(self, name: str) -> str:
        """'0 < top_p <= 1', 'k >= 1', 'temperature = 0 or 0.01 <= temperature <= 100', or 'finite' when unbounded."""
        if self.or_zero:
            return f"{name} = 0 or {dataclasses.replace(self, or_zero=False).describe(name)}"
        low = f"{show_number(self.ge)} <= " if self.ge is not None else f"{show_number(self.gt)} < " if self.gt is not None else ""
        high = f" <= {show_number(self.le)}" if self.le is not None else f" < {show_number(self.lt)}" if self.lt is not None else ""
        if low and high:
            return f"{low}{name}{high}"
        if self.ge is not None:  # 'k >= 1' reads better than '1 <= k'
            return f"{name} >= {show_number(self.ge)}"
        if self.gt is not None:
            return f"{name} > {show_number(self.gt)}"
        return f"{name}{high}" if high else f"{name} finite"


def _f(default: Any, help: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, or_zero: bool = False, choices: tuple[str, ...] = ()) -> Any:
    """A settings field: its default, help text and what values it allows (checked by `validate`)."""
    metadata: dict[str, Any] = {"help": help}
    if (ge, gt, le, lt) != (None, None, None, None):
        metadata["bounds"] = Bounds(ge=ge, gt=gt, le=le, lt=lt, or_zero=or_zero)
    if choices:
        metadata["choices"] = choices
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelsConfig:
    embedder: str = _f(PACKAGED_EMBEDDER, "Sentence-Transformers model: 'packaged:all-MiniLM-L6-v2', a local folder, or a hub id (needs allow_online).")
    dialogue: str = _f(PACKAGED_DIALOGUE, "Dialogue model: 'packaged:SmolLM2-135M-Instruct', a local Hugging Face model folder, or a hub id (needs allow_online).")
    allow_online: bool = _f(False, "Let Hugging Face libraries reach the network. Off: HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1.")
    dtype: str = _f("auto", "Dialogue model dtype: auto (measured on this CPU), float32 or bfloat16.", choices=("auto", "float32", "bfloat16"))
    threads: int = _f(0, "CPU threads for the dialogue model (torch, or llama.cpp on the llamacpp backend); 0 keeps torch's default, or every available core for llama.cpp.", ge=0, le=1024)


@dataclass
class RetrievalConfig:
    mode: str = _f("hybrid", "Search mode: dense, bm25 or hybrid.", choices=("dense", "bm25", "hybrid"))
    k: int = _f(5, "Number of passages returned by search and given to the model.", ge=1, le=1000)
    chunk_tokens: int = _f(256, "Chunk size in embedder tokens.", ge=16, le=8192)
    chunk_overlap: int = _f(32, "Overlap between neighbouring chunks in embedder tokens.", ge=0, le=8192)
    fusion: str = _f("mix", "How hybrid mode fuses BM25 and dense: mix (min-max normalised scores, weighted) or rrf (reciprocal rank fusion); mix won on SciFact train queries (docs/RESULTS.md).", choices=("mix", "rrf"))
    rrf_k: int = _f(60, "Reciprocal-rank-fusion constant.", ge=0, le=100_000)
    dense_weight: float = _f(0.6, "Weight of the dense score when fusion is 'mix' (BM25 gets 1 - this); 0.6 chosen on SciFact train queries.", ge=0, le=1)
    candidates: int = _f(100, "How many candidates each retriever contributes before fusion.", ge=1, le=100_000)
    ann_threshold: int = _f(50000, "Vector count above which the FAISS index switches from exact (flat) to HNSW.", ge=0, le=1_000_000_000)
    hnsw_m: int = _f(32, "HNSW graph degree.", ge=2, le=512)
    hnsw_ef_search: int = _f(128, "HNSW search breadth (higher: better recall, slower).", ge=1, le=100_000)
    batch_size: int = _f(64, "Embedding batch size.", ge=1, le=65_536)


@dataclass
class GenerationConfig:
    backend: str = _f("auto", "Generation backend: hf (transformers), llamacpp (llama.cpp, the `llamacpp` extra; runs the model's GGUF), or auto (llamacpp when llama-cpp-python is installed and the model has a GGUF, else hf).", choices=("auto", "hf", "llamacpp"))
    max_new_tokens: int = _f(200, "Longest answer in tokens.", ge=1, le=1_048_576)
    temperature: float = _f(0.0, "Sampling temperature; 0 means greedy decoding.", ge=0.01, le=100, or_zero=True)
    top_p: float = _f(1.0, "Nucleus sampling threshold (used when temperature > 0).", gt=0, le=1)
    repetition_penalty: float = _f(1.1, "Penalty for repeating tokens (1.0 = none).", ge=0.01, le=100)
    context_tokens: int = _f(2048, "Prompt + answer budget in model tokens.", ge=16, le=1_048_576)
    seed: int = _f(0, "Random seed for sampling.", ge=0, le=SEED_MAX)
    copy_bias: float = _f(0.0, "Added to the logits of every token of the prompt, so a small model copies the passages' words rather than its own (0 = off).", ge=0, le=20)
    stop: list[str] = _f(["\nQuestion:", "\nPassages:"], "Stop strings: the answer ends before the first one (the defaults end an answer that runs on into a new question of the prompt format).")


@dataclass
class EngineConfig:
    collections: list[str] = _f(["curriculum", "handbook"], "Collections searched by ask, chat and serve.")
    passages: int = _f(4, "Passages put into the prompt.", ge=1, le=1000)
    evidence_sentences: int = _f(3, "Sentences of each passage the dialogue model sees: those closest to the question, in reading order (0 = whole passages). The shipped tutor was trained on prompts made this way.", ge=0, le=1000)
    abstain_threshold: float = _f(0.15, "Refuse when the best passage similarity is below this (chosen on corpora/qa/dev.jsonl; `chatkit eval calibrate` re-chooses it for your documents).", ge=-1, le=1)
    min_question_coverage: float = _f(0.3, "Refuse when less than this share of the question's terms (IDF-weighted) occurs in the passages (chosen on corpora/qa/dev.jsonl).", ge=0, le=1)
    unknown_term_similarity: float = _f(0.5, "Refuse a question with a term no document contains (typos aside) unless the best passage similarity reaches this (chosen on corpora/qa/dev.jsonl).", ge=-1, le=1)
    max_question_chars: int = _f(4000, "Longer questions are trimmed with a warning.", ge=1, le=10_000_000)
    adapter: str = _f("", "Adapter used by default ('' = the promoted one, 'base' = none).")
    answer_style: str = _f("extractive", "extractive (cited passage sentences; the best measured with the base model), generative, or auto (generative, falling back to extractive when the answer cites nothing usable; for fine-tuned adapters).", choices=("extractive", "generative", "auto"))


@dataclass
class TrainingConfig:
    lora_r: int = _f(16, "LoRA rank.", ge=1, le=4096)
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r).", ge=1, le=65_536)
    lora_dropout: float = _f(0.0, "LoRA dropout. 0 lets PEFT skip the dropout copy of every adapted input: ~25 % faster and "
                                    "~1 GB less peak memory per 1,000-token row on a CPU.", ge=0, lt=1)
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "Modules that get LoRA matrices.")
    learning_rate: float = _f(2e-4, "Peak learning rate.", gt=0, le=1)
    epochs: float = _f(2.0, "Training epochs.", gt=0, le=10_000)
    batch_size: int = _f(1, "Per-device batch size. On a CPU, 1 with gradient accumulation is fastest: no padding, small activations.", ge=1, le=65_536)
    grad_accum: int = _f(4, "Gradient accumulation steps (effective batch = batch_size x grad_accum x devices).", ge=1, le=65_536)
    max_length: int = _f(1024, "Longest training row in model tokens; passages are trimmed first, never the answer.", ge=16, le=1_048_576)
    warmup_ratio: float = _f(0.05, "Share of steps spent warming the learning rate up.", ge=0, le=1)
    seed: int = _f(0, "Training seed.", ge=0, le=SEED_MAX)
    packing: bool = _f(False, "Pack several short rows into one sequence.")
    gradient_checkpointing: str = _f("auto", "Recompute activations in the backward pass instead of keeping them: auto "
                                            f"(on when the longest training row is over {CHECKPOINT_ABOVE_TOKENS} tokens), true or false. "
                                            "On a CPU with the 135M model it cuts the peak of 1,024-token rows from ~4.4 to ~2.6 GB "
                                            "for ~28 % fewer tokens/s.", choices=("auto", "true", "false"))
    quantization: str = _f("none", "none or nf4 (QLoRA, needs a CUDA GPU and bitsandbytes).", choices=("none", "nf4"))
    bf16: str = _f("auto", "bf16 autocast: auto, true or false.", choices=("auto", "true", "false"))
    optim: str = _f("adamw_torch", "Optimizer name as in transformers (e.g. paged_adamw_8bit on GPU).")
    eval_every_epoch: bool = _f(True, "Compute validation loss and perplexity each epoch.")
    val_fraction: float = _f(0.1, "Share of rows held out for validation when no --val file is given (used from 20 rows; 0 = none).", ge=0, lt=1)
    group_by_length: bool = _f(True, "Batch rows of similar length together: less padding, more tokens/s.")
    pad_to_multiple_of: int = _f(64, "Pad each batch to a multiple of this many tokens (0 = no padding). On a CPU every new "
                                     "sequence length compiles new oneDNN kernels, which costs time and memory; a few lengths are reused.", ge=0, le=8192)
    malloc_arenas: int = _f(1, "glibc malloc arenas while training on a CPU (0 = glibc's default, one per thread). "
                                 "One arena lowers peak memory at no measured cost in speed.", ge=0, le=1024)
    logging_steps: int = _f(5, "Optimizer steps between loss lines in the training log.", ge=1, le=1_000_000)


@dataclass
class ServerConfig:
    host: str = _f("127.0.0.1", "Address to bind; anything but loopback needs an API key.")
    port: int = _f(8000, "Port to bind.", ge=1, le=65535)
    api_key: str = _f("", "Bearer key required by the API ('' = none, loopback only).")
    queue_size: int = _f(16, "Requests waiting for the model before answering 503.", ge=0, le=100_000)
    max_body_bytes: int = _f(1_000_000, "Largest request body accepted; bigger ones get 413.", ge=1024, le=1 << 31)


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
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
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
    raise ConfigError(f"config key '{key}' wants {'an' if name[0] in 'aeiou' else 'a'} {name}, got {_shown(value)}", "fix the value in your config file or --set")


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

    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory", "give --config a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "check the path given to --config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start})", "a config file is YAML text; see configs/default.yaml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", "check the path given to --config") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}", "fix the file's syntax") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file", "see configs/default.yaml") from None
    except ValueError as exc:  # a YAML constructor's own check: a date like 2020-13-45, an integer of 5,000 digits
        raise ConfigError(f"{path}: a value is not valid YAML ({' '.join(str(exc).split())[:80]})", "fix the file's value") from None


def parse_override(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise ConfigError(f"--set wants key=value, got '{text}'", "e.g. --set retrieval.k=8")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML: the text itself, which the key's type may refuse
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


# Limits between two keys, as (smaller, larger): the first must stay below the second.
_BELOW = (
    ("retrieval.chunk_overlap", "retrieval.chunk_tokens"),
    ("generation.max_new_tokens", "generation.context_tokens"),
)


def field_specs() -> dict[str, dataclasses.Field[Any]]:
    """Every dotted key's dataclass field: its default, help text, and choices or bounds."""
    settings = Settings()
    return {f"{section.name}.{spec.name}": spec
            for section in dataclasses.fields(settings) for spec in dataclasses.fields(getattr(settings, section.name))}


def allowed(key: str) -> str:
    """What `key` accepts, worded as the range errors word it ('' for free text)."""
    spec = field_specs()[key]
    if "choices" in spec.metadata:
        return "one of " + ", ".join(spec.metadata["choices"])
    if "bounds" in spec.metadata:
        return str(spec.metadata["bounds"].describe(spec.name))
    return ""


def validate(settings: Settings) -> None:
    """The one range check: every key against the choices or bounds declared beside its help text."""
    defaults = all_keys()
    for key, spec in field_specs().items():
        value = getattr(getattr(settings, key.split(".", 1)[0]), spec.name)
        choices = spec.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{key}={_shown(value)} is not allowed (allowed: one of {', '.join(choices)})", f"e.g. --set {key}={choices[0]}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            bounds = spec.metadata.get("bounds", Bounds())  # a number without declared bounds must still be finite
            if not bounds.admits(value):
                what = "is not a finite number" if isinstance(value, float) and not math.isfinite(value) else "is out of range"
                raise ConfigError(f"{key}={show_number(value)} {what} (allowed: {bounds.describe(spec.name)})",
                                  f"e.g. --set {key}={show_number(defaults[key][0])}")
    values = all_keys(settings)
    for small, large in _BELOW:
        if values[small][0] >= values[large][0]:
            raise ConfigError(f"{small}={show_number(values[small][0])} is out of range "
                              f"(allowed: {small.rsplit('.', 1)[1]} < {large}={show_number(values[large][0])})",
                              f"lower {small} or raise {large}")


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
