"""Training row formats, detected per row and normalised to OpenAI-style messages.

Accepted shapes:
- openai:   {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
- rag:      openai rows whose user turns are the engine's "Passages:\n[1] ...\n\nQuestion: ..." format
- sharegpt: {"conversations": [{"from": "human"|"gpt"|"system", "value": str}, ...]}
- alpaca:   {"instruction": str, "input": str (optional), "output": str, "system": str (optional)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatkit.prompting import SYSTEM_PROMPT

Message = dict[str, str]

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
FORMATS = ("openai", "rag", "sharegpt", "alpaca")


class RowError(ValueError):
    """What is wrong with one row; the caller adds the line number."""


@dataclass(frozen=True)
class Row:
    line: int
    fmt: str
    messages: tuple[tuple[str, str], ...]  # (role, content), hashable for duplicate detection

    def as_messages(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]


def is_rag_user(content: str) -> bool:
    return content.startswith("Passages:\n") and "\n\nQuestion: " in content


def detect(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise RowError(f"a row must be a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        return "openai"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    keys = ", ".join(sorted(obj)[:5]) or "none"
    raise RowError(f"unknown row format (keys: {keys}); expected 'messages', 'conversations' or 'instruction'+'output'")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"{what} is empty")
    return value


def _openai(obj: dict[str, Any]) -> list[tuple[str, str]]:
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise RowError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise RowError(f"message {i} must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise RowError(f"message {i}: unknown role {m['role']!r} (use system, user or assistant)")
        out.append((m["role"], _text(m["content"], f"message {i} ({m['role']}) content")))
    return out


def _sharegpt(obj: dict[str, Any]) -> list[tuple[str, str]]:
    conv = obj["conversations"]
    if not isinstance(conv, list) or not conv:
        raise RowError("'conversations' must be a non-empty list")
    out = []
    for i, m in enumerate(conv):
        if not isinstance(m, dict) or "from" not in m or "value" not in m:
            raise RowError(f"turn {i} must be an object with 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(m["from"]).lower())
        if role is None:
            raise RowError(f"turn {i}: unknown role {m['from']!r} (use system, human or gpt)")
        out.append((role, _text(m["value"], f"turn {i} ({m['from']}) value")))
    return out


def _alpaca(obj: dict[str, Any]) -> list[tuple[str, str]]:
    instruction = _text(obj["instruction"], "'instruction'")
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        raise RowError("'input' must be a string")
    out = []
    if obj.get("system"):
        out.append(("system", _text(obj["system"], "'system'")))
    out.append(("user", f"{instruction}\n\n{extra}" if extra.strip() else instruction))
    out.append(("assistant", _text(obj["output"], "'output'")))
    return out


def check_order(messages: list[tuple[str, str]]) -> None:
    """An optional system message first, then user/assistant alternating, ending with the assistant."""
    body = messages[1:] if messages and messages[0][0] == "system" else messages
    if not any(role == "assistant" for role, _ in body):
        raise RowError("no assistant turn: nothing to train on")
    for i, (role, _) in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            where = i + (len(messages) - len(body))
            if role == "system":
                raise RowError(f"bad turn order: message {where} is a system message; only the first may be")
            raise RowError(f"bad turn order: message {where} is '{role}', expected '{expected}' (turns alternate user, assistant)")
    if body[-1][0] != "assistant":
        raise RowError("bad turn order: the last turn is the user's; end each row with the assistant's answer")


def check_rag(messages: list[tuple[str, str]]) -> None:
    from chatkit.prompting import parse_user_message

    for i, (role, content) in enumerate(messages):
        if role == "user" and content.startswith("Passages:"):
            if not is_rag_user(content):
                raise RowError(f"message {i}: starts with 'Passages:' but has no '\\n\\nQuestion: ' line")
            question, blocks = parse_user_message(content)
            if not question.strip():
                raise RowError(f"message {i}: the question after 'Question:' is empty")
            body = content[len("Passages:\n"):].rsplit("\n\nQuestion: ", 1)[0].strip()
            if body != "(none)" and not blocks:
                raise RowError(f"message {i}: passages must be numbered like '[1] Title > Heading' on their own line")


def normalise(obj: Any, line: int) -> Row:
    """One parsed JSON value -> a Row, or RowError saying what is wrong."""
    fmt = detect(obj)
    messages = {"openai": _openai, "sharegpt": _sharegpt, "alpaca": _alpaca}[fmt](obj)
    check_order(messages)
    check_rag(messages)
    if any(role == "user" and is_rag_user(content) for role, content in messages):
        if fmt == "openai":
            fmt = "rag"
        # The engine always sends its system prompt with passages; train on what it will see.
        if messages[0][0] != "system":
            messages.insert(0, ("system", SYSTEM_PROMPT))
    return Row(line, fmt, tuple(messages))
