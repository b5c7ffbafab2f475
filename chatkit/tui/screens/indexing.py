"""Ask which folder to add and into which collection; the app runs the indexing with a progress bar."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AddFolderPrompt(ModalScreen[tuple[str, str] | None]):
    """Returns (path, collection), or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, collection: str) -> None:
        super().__init__()
        self.collection = collection

    def compose(self):  # type: ignore[no-untyped-def]
        with Vertical(classes="dialog small"):
            yield Label("Add a folder to the index", classes="dialog-title")
            yield Input(placeholder="folder or file path", id="index-path")
            yield Input(self.collection, placeholder="collection name", id="index-collection")
            yield Label("[dim]enter to start · esc to cancel[/]")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = self.query_one("#index-path", Input).value.strip()
        name = self.query_one("#index-collection", Input).value.strip() or self.collection
        if not path:
            self.query_one("#index-path", Input).focus()
            self.notify("type the path of a folder to index", severity="warning")
            return
        self.dismiss((path, name))

    def action_cancel(self) -> None:
        self.dismiss(None)
