"""F1: every key, grouped by where it works."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
**chatkit chat: keys** (esc closes)

| Anywhere | |
|---|---|
| `enter` | send the question |
| `ctrl+j` / `shift+enter` | new line in the question |
| `↑` / `↓` in the input | earlier / later questions |
| `esc` | stop the answer (the partial answer is kept, marked) |
| `ctrl+p` | commands: adapter, collection, retrieval mode, k, add a folder, index stats, theme |
| `ctrl+n` | new conversation |
| `ctrl+b` | show / hide conversations |
| `ctrl+o` | show / hide sources |
| `ctrl+f` | search conversations |
| `ctrl+t` | light / dark theme |
| `f1` | this help |
| `ctrl+q` / `ctrl+c` | quit (nothing is lost; you resume here next time) |

| On an answer (`shift+tab` from the input) | |
|---|---|
| `1`…`9`, or click `[n]` | open passage n in the sources pane |
| `enter` / `s` | open the sources |
| `+` / `-` | rate the answer +1 / -1 (kept for `chatkit conversations export --rated good`) |
| `c` | comment on the answer |
| `↑` / `↓` | previous / next answer |

| In the conversation list | |
|---|---|
| `enter` | open |
| `n` / `r` / `d` | new / rename / delete |
| `/` | search |

An orange border and *not in my documents* mean the engine found no passage that answers the question;
the closest sources are still listed.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self):  # type: ignore[no-untyped-def]
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Markdown(HELP)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
