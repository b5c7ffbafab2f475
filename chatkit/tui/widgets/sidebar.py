"""Conversations from the store: search box and list; keys on the list create, rename and delete."""

from __future__ import annotations

import time

from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

from chatkit.conversations import ConversationInfo
from chatkit.terminal_text import printable


class ConversationItem(ListItem):
    def __init__(self, info: ConversationInfo) -> None:
        when = time.strftime("%d %b %H:%M", time.localtime(info.updated))
        turns = f"{info.turns} turn" + ("" if info.turns == 1 else "s")
        label = Content.from_markup("$title\n[dim]$when · $turns[/]", title=printable(info.title, one_line=True)[:60], when=when, turns=turns)
        super().__init__(Label(label))
        self.info = info


class ConversationList(ListView):
    BINDINGS = [
        Binding("n", "request('new')", "New"),
        Binding("r", "request('rename')", "Rename"),
        Binding("d,delete", "request('delete')", "Delete"),
        Binding("slash", "request('search')", "Search"),
    ]

    class Requested(Message):
        def __init__(self, action: str, conversation_id: int | None) -> None:
            super().__init__()
            self.action, self.conversation_id = action, conversation_id

    def action_request(self, action: str) -> None:
        item = self.highlighted_child
        conv = item.info.id if isinstance(item, ConversationItem) else None
        self.post_message(self.Requested(action, conv))


class Sidebar(Vertical):
    class Opened(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def compose(self):  # type: ignore[no-untyped-def]
        yield Label("Conversations", classes="pane-title")
        yield Input(placeholder="search…", id="conv-search")
        yield ConversationList(id="conv-list")

    async def show(self, infos: list[ConversationInfo], current: int | None) -> None:
        listing = self.query_one(ConversationList)
        await listing.clear()
        await listing.extend(ConversationItem(i) for i in infos)
        for n, info in enumerate(infos):
            if info.id == current:
                listing.index = n

    @property
    def search_text(self) -> str:
        return self.query_one("#conv-search", Input).value.strip()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Opened(event.item.info.id))
