"""Markdown via markdown-it-py: top-level blocks with their source offsets under their heading path."""

from __future__ import annotations

from chatkit.corpus.blocks import Block, split_oversized


def _front_matter_end(text: str) -> int:
    if not text.startswith("---\n"):
        return 0
    end = text.find("\n---", 4)
    if end < 0:
        return 0
    nl = text.find("\n", end + 4)
    return len(text) if nl < 0 else nl + 1


def parse_markdown(text: str) -> tuple[str, list[Block]]:
    """(first level-1 heading or '', blocks). Offsets point into `text` itself."""
    from markdown_it import MarkdownIt

    skip = _front_matter_end(text)
    body = text[skip:]
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(body)
    line_starts = [0]
    for i, ch in enumerate(body):
        if ch == "\n":
            line_starts.append(i + 1)
    line_starts.append(len(body))

    def span(start_line: int, end_line: int) -> tuple[int, int]:
        return line_starts[min(start_line, len(line_starts) - 1)], line_starts[min(end_line, len(line_starts) - 1)]

    title = ""
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.level != 0 or tok.map is None:
            i += 1
            continue
        if tok.type == "heading_open":
            level = int(tok.tag[1:])
            heading = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            if level == 1 and not title and not blocks:
                title = heading
            else:
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, heading))
            i += 3
            continue
        start, end = span(*tok.map)
        piece = body[start:end].rstrip()
        if piece.strip():
            path = tuple(h for _, h in stack)
            lead = len(piece) - len(piece.lstrip())
            for sub, at in split_oversized(piece.lstrip(), skip + start + lead):
                blocks.append(Block(sub, at, path))
        i += 1
        # Skip to the matching close token of this top-level block.
        if tok.nesting == 1:
            depth = 1
            while i < len(tokens) and depth:
                depth += tokens[i].nesting if tokens[i].level == 0 else 0
                i += 1
    return title, blocks
