"""The sources pane: the passages behind an answer, one opened in full with the question's words marked."""

from __future__ import annotations

import re

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from chatkit.terminal_text import printable
from chatkit.tui.highlight import matching_spans
from chatkit.tui.session import TurnRecord
from chatkit.types import Hit

_BLOCK_START = re.compile(r"([-*+]|\d+[.)]|#+|\||>)\s")


def reflow(text: str) -> str:
    """Join a passage's hard-wrapped lines so it fills the pane; blank lines, list items, headings,
    tables and quotes still start a new line."""
    lines: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if lines and line and lines[-1] and not _BLOCK_START.match(line) and not lines[-1].startswith("#"):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return "\n".join(lines)


def passage_content(hit: Hit, n: int, question: str) -> Content:
    chunk = hit.chunk
    head = Content.from_markup("[b]\\[$n] $title[/b]\n", n=n, title=printable(chunk.title or chunk.doc_id, one_line=True))
    where = Content.from_markup("[dim]$source[/]\n", source=printable(chunk.source or chunk.doc_id, one_line=True))
    heading = Content.from_markup("[i]$h[/i]\n", h=printable(chunk.heading, one_line=True)) if chunk.heading else Content("")
    body = reflow(printable(chunk.text))
    text = Content(body)
    for start, end in matching_spans(body, question):
        text = text.stylize("bold reverse", start, end)
    return head + where + heading + Content("\n") + text


class SourcesPane(Vertical):
    BINDINGS = [Binding("escape", "close", "Close", show=False)]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.record: TurnRecord | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Label("Sources", classes="pane-title", id="sources-title")
        yield OptionList(id="sources-list")
        with VerticalScroll(id="passage-scroll"):
            yield Static("", id="passage")

    def show(self, record: TurnRecord, n: int) -> None:
        self.record = record
        options = self.query_one(OptionList)
        options.clear_options()
        cited = set(record.cited)
        for i, hit in enumerate(record.hits, start=1):
            mark = "•" if i in cited else " "
            label = Content.from_markup(f"{mark}\\[$i] $t", i=i, t=printable(hit.chunk.title or hit.chunk.doc_id, one_line=True)[:50])
            options.add_option(Option(label, id=str(i)))
        title = "Closest sources (not used)" if record.abstained else "Sources"
        self.query_one("#sources-title", Label).update(title)
        if record.hits:
            options.highlighted = max(0, min(n, len(record.hits)) - 1)
            self.open(options.highlighted or 0)
        else:
            self.query_one("#passage", Static).update("No passages were retrieved for this answer.")

    def open(self, index: int) -> None:
        if self.record is None or not 0 <= index < len(self.record.hits):
            return
        self.query_one("#passage", Static).update(passage_content(self.record.hits[index], index + 1, self.record.question))
        self.query_one("#passage-scroll").scroll_home(animate=False)

    @property
    def shown_text(self) -> str:
        """The open passage as plain text (what the tests read)."""
        return str(self.query_one("#passage", Static).content)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.open(event.option_index)

    def action_close(self) -> None:
        self.display = False
        self.app.query_one("#prompt").focus()
