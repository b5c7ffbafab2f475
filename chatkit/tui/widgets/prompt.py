"""The question box: multi-line, Enter sends, up/down recall earlier questions."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("shift+enter", "ctrl+j", "alt+enter")


class PromptInput(TextArea):
    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, asked: list[str] | None = None, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                         placeholder="Ask a question · enter sends · ctrl+j new line · ↑ history", **kwargs)  # type: ignore[arg-type]
        self.asked: list[str] = list(asked or [])
        self._recall = len(self.asked)
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.prevent_default()
            event.stop()
            text = self.text.strip()
            if text:
                self.remember(text)
                self.clear()
                self.post_message(self.Submitted(text))
            return
        if event.key in NEWLINE_KEYS:
            event.prevent_default()
            event.stop()
            self.insert("\n")
            return
        await super()._on_key(event)

    def set_asked(self, asked: list[str]) -> None:
        self.asked = list(asked)
        self._recall = len(self.asked)

    def remember(self, text: str) -> None:
        if not self.asked or self.asked[-1] != text:
            self.asked.append(text)
        self._recall = len(self.asked)

    def action_cursor_up(self, select: bool = False) -> None:
        # Up on the first line walks back through earlier questions, as in a shell.
        if self.cursor_location[0] == 0 and not select and self.asked and self._recall > 0:
            if self._recall == len(self.asked):
                self._draft = self.text
            self._recall -= 1
            self._show(self.asked[self._recall])
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if self.cursor_location[0] == last_row and not select and self._recall < len(self.asked):
            self._recall += 1
            self._show(self.asked[self._recall] if self._recall < len(self.asked) else self._draft)
            return
        super().action_cursor_down(select)

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)
