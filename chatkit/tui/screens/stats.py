"""Index stats: one row per collection, plus what the engine is running."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from chatkit.tui.knowledge import CollectionStats


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class StatsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, stats: list[CollectionStats], searching: list[str], note: str = "") -> None:
        super().__init__()
        self.stats, self.searching, self.note = stats, searching, note

    def compose(self):  # type: ignore[no-untyped-def]
        with Vertical(classes="dialog"):
            yield Label("Index stats", classes="dialog-title")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("collection", "docs", "chunks", "files", "size", "searched")
            for s in self.stats:
                table.add_row(s.name, str(s.documents), str(s.chunks), str(s.sources), human_bytes(s.bytes),
                              "yes" if s.name in self.searching else "")
            yield table
            yield Label(self.note or "[dim]esc to close[/]")

    def action_close(self) -> None:
        self.dismiss(None)
