"""The scrolling list of exchanges, with a welcome note when the conversation is empty."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from chatkit.tui.session import TurnRecord
from chatkit.tui.widgets.answer import AnswerView

WELCOME = (
    "[b]Ask about your documents.[/b]\n"
    "[dim]Answers cite passages as [1]; press [b]shift+tab[/b] to reach an answer, then a number to read the source.\n"
    "[b]ctrl+p[/b] commands · [b]f1[/b] help · [b]ctrl+n[/b] new conversation[/]"
)


class ChatLog(VerticalScroll):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(WELCOME, classes="welcome")

    async def show_turns(self, turns: list[TurnRecord]) -> None:
        await self.remove_children(AnswerView)
        await self.mount_all([AnswerView(t) for t in turns])
        self.query_one(".welcome").display = not turns
        self.scroll_end(animate=False)

    async def add_turn(self, record: TurnRecord) -> AnswerView:
        view = AnswerView(record, streaming=True)
        self.query_one(".welcome").display = False
        await self.mount(view)
        self.scroll_end(animate=False)
        return view

    def last_answer(self) -> AnswerView | None:
        views = list(self.query(AnswerView))
        return views[-1] if views else None
