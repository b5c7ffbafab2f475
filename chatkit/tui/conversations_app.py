"""The app's conversation handling: resume, switch, new, rename, delete, search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import App
from textual.widgets import Input

from chatkit.errors import ChatkitError
from chatkit.tui.screens.prompts import Confirm, TextPrompt
from chatkit.tui.widgets.chat_log import ChatLog
from chatkit.tui.widgets.prompt import PromptInput
from chatkit.tui.widgets.sidebar import ConversationList, Sidebar
from chatkit.tui.widgets.sources import SourcesPane
from chatkit.tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from chatkit.config import Paths, Settings
    from chatkit.conversations import ConversationStore
    from chatkit.tui.knowledge import Knowledge
    from chatkit.tui.session import ChatSession
    from chatkit.tui.state import UIState


class ConversationsApp(App[None]):
    """The part of ChatApp that manages conversations. ChatApp.__init__ sets the attributes below,
    shared by every layer of the app (conversations, options, answers)."""

    settings: Settings
    paths: Paths
    store: ConversationStore
    session: ChatSession
    knowledge: Knowledge
    state: UIState
    collections: list[str]
    mode: str
    k: int

    @property
    def generating(self) -> bool:
        return False

    async def resume(self, conversation_id: int | None) -> None:
        """Reopen the conversation the user left (or the newest one)."""
        infos = self.store.list_conversations()
        if conversation_id is not None and conversation_id not in {i.id for i in infos}:
            self.notify(f"conversation {conversation_id} is gone; opened the newest one", severity="warning")
            conversation_id = infos[0].id if infos else None
        if conversation_id is not None:
            await self.open_conversation(conversation_id)
        else:
            await self.refresh_sidebar()

    async def open_conversation(self, conversation_id: int) -> None:
        try:
            turns = self.session.open(conversation_id)
        except ChatkitError as exc:
            self.notify(exc.message, severity="error")
            return
        await self.query_one(ChatLog).show_turns(turns)
        self.query_one(SourcesPane).display = False
        if turns:  # the status bar shows the last answer's speed, as if it had just been given
            status = self.query_one(StatusBar)
            status.tokens_per_s = turns[-1].timings.get("tokens_per_s", 0.0)
            status.retrieval_ms = turns[-1].timings.get("retrieval_s", 0.0) * 1000
        await self.refresh_sidebar()

    async def refresh_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        await sidebar.show(self.store.list_conversations(sidebar.search_text), self.session.conversation_id)

    def _busy(self) -> bool:
        if self.generating:
            self.notify("wait for this answer, or press esc to stop it", severity="warning")
            return True
        return False

    async def on_sidebar_opened(self, message: Sidebar.Opened) -> None:
        if not self._busy() and message.conversation_id != self.session.conversation_id:
            await self.open_conversation(message.conversation_id)
        self.query_one(PromptInput).focus()

    async def action_new_conversation(self) -> None:
        if self._busy():
            return
        self.session.new()
        await self.query_one(ChatLog).show_turns([])
        self.query_one(SourcesPane).display = False
        await self.refresh_sidebar()
        self.query_one(PromptInput).focus()

    async def on_conversation_list_requested(self, message: ConversationList.Requested) -> None:
        if message.action == "new":
            await self.action_new_conversation()
        elif message.action == "search":
            self.query_one("#conv-search", Input).focus()
        elif message.conversation_id is not None:
            if message.action == "rename":
                self.rename_conversation(message.conversation_id)
            elif message.action == "delete":
                self.delete_conversation(message.conversation_id)

    def action_rename_conversation(self) -> None:
        if self.session.conversation_id is None:
            self.notify("ask something first: a conversation starts with its first question")
        else:
            self.rename_conversation(self.session.conversation_id)

    def action_delete_conversation(self) -> None:
        if self.session.conversation_id is not None:
            self.delete_conversation(self.session.conversation_id)

    def rename_conversation(self, conversation_id: int) -> None:
        title = self.store.get_conversation(conversation_id).title

        async def done(text: str | None) -> None:
            if text and text.strip():
                self.store.rename(conversation_id, text.strip())
                await self.refresh_sidebar()

        self.push_screen(TextPrompt("Rename conversation", title), done)

    def delete_conversation(self, conversation_id: int) -> None:
        if self._busy():
            return
        title = self.store.get_conversation(conversation_id).title

        async def done(yes: bool | None) -> None:
            if not yes:
                return
            self.store.delete(conversation_id)
            if conversation_id == self.session.conversation_id:
                await self.action_new_conversation()
            else:
                await self.refresh_sidebar()
            self.notify(f"deleted '{title[:40]}'")

        self.push_screen(Confirm(f"Delete '{title[:50]}' and its ratings?"), done)

    @on(Input.Changed, "#conv-search")
    async def search_changed(self) -> None:
        await self.refresh_sidebar()

    @on(Input.Submitted, "#conv-search")
    def search_submitted(self) -> None:
        self.query_one(ConversationList).focus()
