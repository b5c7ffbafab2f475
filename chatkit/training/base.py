"""The base model training starts from: where it lives, its id and weights fingerprint, its tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import ModelError
from chatkit.models import model_fingerprint, resolve_dialogue


@dataclass(frozen=True)
class BaseModel:
    path: str
    model_id: str
    fingerprint: str


def resolve_base(settings: Settings, paths: Paths, progress: Callable[[str], None] | None = None) -> BaseModel:
    resolved = resolve_dialogue(settings, paths, progress)
    return BaseModel(resolved.path, resolved.model_id, model_fingerprint(resolved.path))


def load_tokenizer(base: BaseModel) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {base.model_id}: {str(exc).splitlines()[0][:160]}",
                         "check models.dialogue points at a Hugging Face model folder") from None
    if not tokenizer.chat_template:
        raise ModelError(f"{base.model_id} has no chat template", "fine-tune an instruct/chat model")
    if not tokenizer.is_fast:
        raise ModelError(f"{base.model_id} has no fast tokenizer, needed to locate assistant tokens", "use a model with tokenizer.json")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
