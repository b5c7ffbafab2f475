"""One exchange in the chat log: the question, and the answer streamed as Markdown with its sources."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from chatkit.terminal_text import printable
from chatkit.tui.citations import cited_number, linkify
from chatkit.tui.session import TurnRecord


class QuestionView(Static):
    def __init__(self, question: str) -> None:
        super().__init__(Content(printable(question)), classes="question")


class AnswerView(Vertical, can_focus=True):
    """Focus it (shift+tab from the input, or click) to open sources with 1-9 and rate with + and -."""

    BINDINGS = [
        *[Binding(str(n), f"open_source({n})", f"source {n}", show=False) for n in range(1, 10)],
        Binding("enter,s", "open_source(0)", "Sources"),
        Binding("plus,equals_sign", "rate(1)", "+1"),
        Binding("minus", "rate(-1)", "-1"),
        Binding("c", "comment", "Comment"),
        Binding("up,k", "step(-1)", "Prev", show=False),
        Binding("down,j", "step(1)", "Next", show=False),
    ]

    class SourceRequested(Message):
        def __init__(self, view: AnswerView, n: int) -> None:
            super().__init__()
            self.view, self.n = view, n

    class RateRequested(Message):
        def __init__(self, view: AnswerView, rating: int) -> None:
            super().__init__()
            self.view, self.rating = view, rating

    class CommentRequested(Message):
        def __init__(self, view: AnswerView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, record: TurnRecord, streaming: bool = False) -> None:
        super().__init__(classes="answer")
        self.record = record
        self.body = Markdown("", open_links=False, classes="answer-body")
        self.banner = Static("not in my documents · closest sources below", classes="banner")
        self.meta = Static("", classes="meta")
        self.stream: MarkdownStream | None = None
        self.streaming = streaming
        self.tokens_seen = 0

    def compose(self):  # type: ignore[no-untyped-def]
        yield QuestionView(self.record.question)
        yield self.banner
        yield self.body
        yield self.meta

    def on_mount(self) -> None:
        if self.streaming:
            self.add_class("-streaming")
            self.meta.update(Content.from_markup("[dim]searching your documents…[/]"))
            self.stream = Markdown.get_stream(self.body)
        else:
            self.show_final()

    async def write(self, text: str) -> None:
        if self.stream is not None:
            self.tokens_seen += 1
            await self.stream.write(printable(text))

    def show_retrieval(self) -> None:
        n = len(self.record.hits)
        self.meta.update(Content.from_markup("[dim]$n passages found · answering… (esc stops)[/]", n=n))

    async def finish(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None
        self.remove_class("-streaming")
        self.show_final()

    def show_final(self) -> None:
        r = self.record
        self.set_class(r.abstained, "-abstained")
        self.set_class(not r.complete, "-partial")
        text = r.answer or ("*(no answer)*" if r.complete else "")
        if not r.complete:
            text += "\n\n*⏹ stopped: partial answer*"
        self.body.update(linkify(printable(text), len(r.hits)))
        self.update_meta()

    def update_meta(self) -> None:
        r = self.record
        parts = []
        cited = set(r.cited)
        for n, hit in enumerate(r.hits, start=1):
            style = "b" if n in cited else "dim"
            parts.append(Content.from_markup(f"[{style}]\\[$n] $title[/]", n=n, title=hit.chunk.title[:28] or hit.chunk.doc_id))
        line = Content("  ").join(parts) if parts else Content.from_markup("[dim]no sources[/]")
        if r.rating is not None:
            mark = "[$success]▲ +1[/]" if r.rating > 0 else "[$error]▼ -1[/]"
            line = line + Content("  ") + Content.from_markup(mark)
        if r.comment:
            line = line + Content.from_markup("  [i dim]“$c”[/]", c=r.comment[:40])
        self.meta.update(line)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        n = cited_number(event.href)
        if n is not None:
            event.stop()
            self.post_message(self.SourceRequested(self, n))

    def action_open_source(self, n: int) -> None:
        if n == 0 or n <= len(self.record.hits):
            self.post_message(self.SourceRequested(self, n or (self.record.cited[0] if self.record.cited else 1)))

    def action_rate(self, rating: int) -> None:
        self.post_message(self.RateRequested(self, rating))

    def action_comment(self) -> None:
        self.post_message(self.CommentRequested(self))

    def action_step(self, delta: int) -> None:
        views = list(self.screen.query(AnswerView))
        i = views.index(self) + delta
        if 0 <= i < len(views):
            views[i].focus()
            views[i].scroll_visible()
