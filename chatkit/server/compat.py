"""Which OpenAI chat-completion parameters chatkit cannot honour: each one, set to anything but its
default, is refused with a 400 that names it, never accepted and silently ignored."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

# (parameter, whether the value asks for nothing, why it is refused)
Unsupported = tuple[str, Callable[[Any], bool], str]

NO_PENALTY = "the decoder has only a repetition penalty (generation.repetition_penalty); send 0 or leave it out"
NO_TOOLS = "the model cannot call tools or functions"

UNSUPPORTED: tuple[Unsupported, ...] = (
    ("presence_penalty", lambda v: v is None or v == 0, NO_PENALTY),
    ("frequency_penalty", lambda v: v is None or v == 0, NO_PENALTY),
    ("n", lambda v: v is None or v == 1, "one choice is generated per request"),
    ("logprobs", lambda v: v is None or v is False, "log probabilities are not returned"),
    ("top_logprobs", lambda v: v is None or v == 0, "log probabilities are not returned"),
    ("logit_bias", lambda v: not v, "logit biases are not supported"),
    ("response_format", lambda v: v is None or v.get("type") == "text", "answers are plain text (type 'text')"),
    ("tools", lambda v: not v, NO_TOOLS),
    ("functions", lambda v: not v, NO_TOOLS),
    ("tool_choice", lambda v: v is None or v in ("none", "auto"), NO_TOOLS),
    ("function_call", lambda v: v is None or v in ("none", "auto"), NO_TOOLS),
    ("modalities", lambda v: v is None or list(v) == ["text"], "answers are text only"),
    ("audio", lambda v: v is None, "answers are text only"),
    ("prediction", lambda v: v is None, "predicted outputs are not supported"),
    ("reasoning_effort", lambda v: v is None, "the model does not reason before answering"),
    ("web_search_options", lambda v: v is None, "the server searches its own collections, not the web"),
    ("store", lambda v: v is None or v is True, "every turn is stored (for feedback and history)"),
)


def unsupported(request: BaseModel) -> tuple[str, str] | None:
    """(parameter, message) for the first parameter `request` sets that chatkit cannot honour."""
    for name, is_default, why in UNSUPPORTED:
        value = getattr(request, name, None)
        if not is_default(value):
            return name, f"'{name}' is not supported with the value {_short(value)}: {why}"
    options = getattr(request, "stream_options", None)
    if options is not None:
        if not getattr(request, "stream", False):
            return "stream_options", "'stream_options' is only allowed with stream=true"
        extra = sorted(k for k, v in (options.model_extra or {}).items() if v not in (None, False))
        if extra:
            return f"stream_options.{extra[0]}", f"'stream_options.{extra[0]}' is not supported: only include_usage is"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(value: Any) -> Any:
    """`value`, if a string, with every lone UTF-16 surrogate replaced by U+FFFD: JSON allows "\\ud800",
    UTF-8 cannot encode it, so pydantic, SQLite, the tokenizers and the response writer would fail on it."""
    return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value
