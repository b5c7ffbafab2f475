"""Text from users and documents (titles, questions, answers, snippets) made safe to print on a terminal:
an ESC sequence in a question must not move the cursor, retitle the window or hide what follows, and a
bidi override must not reorder what the reader sees."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi embeddings,
# overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# A lone surrogate (undecodable bytes in an argument or a file name) cannot be written to a UTF-8 terminal.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str, one_line: bool = False) -> str:
    """`text` without escape sequences and control characters; with `one_line`, newlines and tabs become spaces
    (a title in a listing)."""
    text = _SURROGATE.sub("\ufffd", _ESCAPE_SEQUENCE.sub("", text))
    if one_line:
        return _CONTROL_ONE_LINE.sub(lambda m: " " if m.group() in "\t\n\r" else "", text)
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


def markup_safe(text: str, one_line: bool = False) -> str:
    """`printable(text)` escaped for rich markup: a title like '[/]' must print as text, not fail as a tag."""
    from rich.markup import escape

    return escape(printable(text, one_line))
