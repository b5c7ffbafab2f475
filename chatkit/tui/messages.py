"""Messages the worker threads post to the app (post_message is thread-safe)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from chatkit.tui.widgets.answer import AnswerView
    from chatkit.types import Event


class LoadProgress(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class EngineReady(Message):
    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine


class EngineFailed(Message):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__()
        self.message, self.hint = message, hint


class EngineEvent(Message):
    """One event of `ChatEngine.chat`, for the answer view it belongs to."""

    def __init__(self, view: AnswerView, event: Event) -> None:
        super().__init__()
        self.view, self.event = view, event


class AnswerFailed(Message):
    def __init__(self, view: AnswerView, message: str, hint: str = "") -> None:
        super().__init__()
        self.view, self.message, self.hint = view, message, hint


class AnswerDone(Message):
    def __init__(self, view: AnswerView) -> None:
        super().__init__()
        self.view = view


class SettingChanged(Message):
    """An adapter or collection switch finished in a worker; `error` is set when it failed."""

    def __init__(self, what: str, value: str, error: str = "") -> None:
        super().__init__()
        self.what, self.value, self.error = what, value, error
