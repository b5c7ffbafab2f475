"""HTML via selectolax: the main content's headings and paragraphs, without menus, scripts or footers."""

from __future__ import annotations

from chatkit.corpus.blocks import Block, split_oversized

_DROP = "script, style, noscript, nav, header, footer, aside, form, svg, iframe, template, button, " \
        "[role=navigation], [role=banner], [role=contentinfo], [aria-hidden=true]"
_BOILERPLATE_WORDS = ("menu", "navbar", "sidebar", "breadcrumb", "cookie", "footer", "skip-link")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {"p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption"}


def _is_boilerplate(node) -> bool:  # type: ignore[no-untyped-def]
    attrs = node.attributes or {}
    marker = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
    return any(w in marker for w in _BOILERPLATE_WORDS)


def parse_html(source: str) -> tuple[str, str, list[Block]]:
    """(title, plain text, blocks); offsets point into the returned plain text."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(source)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    for node in tree.css(_DROP):
        node.decompose()
    for node in tree.css("div, section, ul, ol, span, p"):
        if _is_boilerplate(node):
            node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.css_first("[role=main]") or tree.body
    if root is None:
        return title, "", []
    stack: list[tuple[int, str]] = []
    parts: list[str] = []
    blocks: list[Block] = []
    pos = 0
    first_h1 = ""
    for node in root.traverse(include_text=False):
        tag = node.tag
        if tag in _HEADINGS:
            text = " ".join(node.text(separator=" ").split())
            level = _HEADINGS[tag]
            if level == 1 and not first_h1 and not blocks:
                first_h1 = text
                continue
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
        elif tag in _BLOCKS:
            # Take only the innermost block element, so a <li><p>..</p></li> is not read twice.
            if any(child.tag in _BLOCKS for child in list(node.traverse(include_text=False))[1:]):
                continue
            sep = "" if tag == "pre" else " "
            raw = node.text(separator=sep)
            text = raw.strip("\n") if tag == "pre" else " ".join(raw.split())
            if not text:
                continue
            for sub, at in split_oversized(text, pos):
                blocks.append(Block(sub, at, tuple(h for _, h in stack)))
            parts.append(text)
            pos += len(text) + 2
    return title or first_h1, "\n\n".join(parts), blocks
