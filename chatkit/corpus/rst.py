"""reStructuredText via docutils: section titles become the heading path."""

from __future__ import annotations

from chatkit.corpus.blocks import Block, ParseError, split_oversized

_TEXT_NODES = ("paragraph", "literal_block", "bullet_list", "enumerated_list", "definition_list", "table",
               "block_quote", "note", "warning", "admonition", "field_list", "line_block", "doctest_block")


def parse_rst(source: str, name: str) -> tuple[str, str, list[Block]]:
    """(title, plain text, blocks); offsets point into the returned plain text."""
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    try:
        tree = publish_doctree(source, source_path=name, settings_overrides={
            "report_level": 5, "halt_level": 5, "file_insertion_enabled": False, "raw_enabled": False,
            "doctitle_xform": True})
    except (SystemMessage, ValueError) as exc:
        raise ParseError(f"{name}: not valid reStructuredText: {str(exc).splitlines()[0]}", "fix the markup") from None
    title = ""
    for child in tree.children:
        if child.tagname == "title":
            title = child.astext().strip()
    parts: list[str] = []
    blocks: list[Block] = []
    pos = 0

    def walk(node, path: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        nonlocal pos
        for child in node.children:
            tag = child.tagname
            if tag == "section":
                titles = [c for c in child.children if c.tagname == "title"]
                walk(child, (*path, titles[0].astext().strip()) if titles else path)
            elif tag in _TEXT_NODES:
                text = child.astext().strip()
                if text:
                    for sub, at in split_oversized(text, pos):
                        blocks.append(Block(sub, at, path))
                    parts.append(text)
                    pos += len(text) + 2
            elif tag not in ("title", "system_message", "comment", "substitution_definition", "target"):
                walk(child, path)

    walk(tree, ())
    return title, "\n\n".join(parts), blocks
