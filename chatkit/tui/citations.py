"""Turn the answer's [n] citations into Markdown links the chat view can open."""

from __future__ import annotations

import re

_CITE = re.compile(r"\[(\d{1,2})\](?!\()")
SCHEME = "cite:"


def linkify(text: str, n_sources: int) -> str:
    """`[2]` -> `[[2]](cite:2)` for every n that names a passage shown; others stay as written."""

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"[\\[{n}\\]]({SCHEME}{n})" if 1 <= n <= n_sources else m.group(0)

    return _CITE.sub(sub, text)


def cited_number(href: str) -> int | None:
    if href.startswith(SCHEME) and href[len(SCHEME):].isdigit():
        return int(href[len(SCHEME):])
    return None
