"""Answers after they are given: open their sources, rate them, comment on them."""

from __future__ import annotations

from chatkit.errors import ChatkitError
from chatkit.tui.options_app import OptionsApp
from chatkit.tui.screens.prompts import TextPrompt
from chatkit.tui.widgets.answer import AnswerView
from chatkit.tui.widgets.chat_log import ChatLog
from chatkit.tui.widgets.sidebar import Sidebar
from chatkit.tui.widgets.sources import SourcesPane

WIDE = 110  # columns from which the sidebar and the sources pane fit beside the chat


class AnswersApp(OptionsApp):
    """Keys and messages of a finished answer; ChatApp adds the layout and the asking itself."""

    def on_answer_view_source_requested(self, message: AnswerView.SourceRequested) -> None:
        if not message.view.record.hits:
            self.notify("this answer has no sources", severity="warning")
            return
        pane = self.query_one(SourcesPane)
        if self.size.width < WIDE:
            self.query_one(Sidebar).display = False  # at 80 columns the chat and the sources share the width
        pane.display = True
        pane.show(message.view.record, message.n)

    def action_toggle_sources(self) -> None:
        pane = self.query_one(SourcesPane)
        if pane.display:
            pane.display = False
            return
        focused = self.focused
        view = focused if isinstance(focused, AnswerView) else self.query_one(ChatLog).last_answer()
        if view is None or not view.record.hits:
            self.notify("no answer with sources yet", severity="warning")
            return
        self.on_answer_view_source_requested(AnswerView.SourceRequested(view, view.record.cited[0] if view.record.cited else 1))

    def on_answer_view_rate_requested(self, message: AnswerView.RateRequested) -> None:
        self.rate(message.view, message.rating)

    def on_answer_view_comment_requested(self, message: AnswerView.CommentRequested) -> None:
        self.comment(message.view)

    def rate(self, view: AnswerView, rating: int, comment: str | None = None) -> None:
        if view.stream is not None or view.record.idx < 0:
            self.notify("wait until the answer is finished", severity="warning")
            return
        try:
            self.session.rate(view.record, rating, comment)
        except ChatkitError as exc:
            self.notify(exc.message, severity="error")
            return
        view.update_meta()
        self.notify(f"rated {rating:+d}" + (" with a comment" if view.record.comment else ""))

    def comment(self, view: AnswerView) -> None:
        if view.record.rating is None:
            self.notify("rate the answer first: + or -", severity="warning")
            return

        def done(text: str | None) -> None:
            if text is not None and view.record.rating is not None:
                self.rate(view, view.record.rating, text.strip())

        self.push_screen(TextPrompt("Comment on this answer", view.record.comment, "what was good or wrong?"), done)

    def rate_last(self, rating: int) -> None:
        view = self.query_one(ChatLog).last_answer()
        if view is None:
            self.notify("no answer to rate yet", severity="warning")
        else:
            self.rate(view, rating)

    def comment_last(self) -> None:
        view = self.query_one(ChatLog).last_answer()
        if view is not None:
            self.comment(view)
