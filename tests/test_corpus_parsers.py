"""Parsers: one per format, per-file errors for bad input, offsets that point back into the text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatkit.corpus.blocks import Parsed, ParseError, Problem
from chatkit.corpus.discover import discover
from chatkit.corpus.parse import parse_file
from chatkit.errors import InputError


def parse_one(path: Path, **kw) -> list[Parsed | Problem]:
    (found,) = discover([path])
    return list(parse_file(found, "hash", **kw))


def make_pdf(path: Path, pages: list[str | None]) -> Path:
    """A minimal real PDF: one Helvetica text line per page (None: a page with no text layer)."""
    objects: list[bytes] = []
    kids = []
    for i, text in enumerate(pages):
        page_no = 3 + 2 * i
        kids.append(f"{page_no} 0 R")
        stream = b"" if text is None else f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_no + 1} 0 R "
                       f"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    head = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(head + objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def test_markdown_title_heading_paths_and_offsets(tmp_path: Path) -> None:
    text = "# Guide\n\nIntro paragraph.\n\n## Setup\n\nInstall it.\n\n### Linux\n\nUse apt.\n\n## Use\n\n- one\n- two\n"
    path = tmp_path / "docs" / "guide.md"
    path.parent.mkdir()
    path.write_text(text)
    (parsed,) = parse_one(path)
    assert isinstance(parsed, Parsed)
    doc = parsed.document
    assert doc.title == "Guide" and doc.doc_id == "docs/guide"
    blocks = list(parsed.blocks)
    assert [(b.heading_path, b.text) for b in blocks] == [
        ((), "Intro paragraph."), (("Setup",), "Install it."), (("Setup", "Linux"), "Use apt."), (("Use",), "- one\n- two")]
    for b in blocks:
        assert doc.text[b.char_start : b.char_start + len(b.text)] == b.text


def test_html_keeps_main_text_and_drops_menus(tmp_path: Path) -> None:
    html = """<html><head><title>Cats</title><script>var x = 1;</script></head><body>
    <nav><a href="/">Home</a> <a href="/menu">Menu item</a></nav>
    <div class="sidebar">Sidebar junk</div>
    <main><h1>All about cats</h1><p>Cats purr when content.</p><h2>Food</h2><ul><li><p>Fish</p></li><li>Mice</li></ul></main>
    <footer>Copyright footer</footer></body></html>"""
    path = tmp_path / "cats.html"
    path.write_text(html)
    (parsed,) = parse_one(path)
    assert isinstance(parsed, Parsed)
    texts = [(b.heading_path, b.text) for b in parsed.blocks]
    assert texts == [((), "Cats purr when content."), (("Food",), "Fish"), (("Food",), "Mice")]
    assert parsed.document.title == "Cats"
    for word in ("Menu item", "Sidebar", "footer", "var x"):
        assert word not in parsed.document.text


def test_rst_sections_become_heading_paths(tmp_path: Path) -> None:
    path = tmp_path / "notes.rst"
    path.write_text("Title\n=====\n\nFirst para.\n\nSection A\n---------\n\nText of A.\n")
    (parsed,) = parse_one(path)
    assert isinstance(parsed, Parsed)
    assert parsed.document.title == "Title"
    assert [(b.heading_path, b.text) for b in parsed.blocks] == [((), "First para."), (("Section A",), "Text of A.")]


def test_pdf_pages_are_kept(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "paper.pdf", ["Hello from page one", "Second page text"])
    (parsed,) = parse_one(path)
    assert isinstance(parsed, Parsed)
    blocks = list(parsed.blocks)
    assert [b.page for b in blocks] == [1, 2]
    assert "page one" in blocks[0].text and "Second page" in blocks[1].text
    assert parsed.document.pages[1][1] == 2


def test_pdf_without_text_layer_is_a_file_error(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(ParseError, match="no text layer"):
        parse_one(path)


def test_broken_pdf_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(ParseError):
        parse_one(path)


def test_jsonl_beir_rows_ids_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    rows = [json.dumps({"_id": "d1", "title": "T1", "text": "alpha"}), "{not json", json.dumps({"id": 7, "text": "beta"}),
            json.dumps({"text": "gamma"}), json.dumps({"title": "no text"}), ""]
    path.write_text("\n".join(rows) + "\n")
    out = parse_one(path)
    docs = [p.document for p in out if isinstance(p, Parsed)]
    problems = [p for p in out if isinstance(p, Problem)]
    assert [d.doc_id for d in docs] == ["d1", "7", "corpus/4"]
    assert docs[0].title == "T1"
    assert [p.line for p in problems] == [2, 5]
    assert "corpus.jsonl:2: bad JSON" in str(problems[0])


def test_jsonl_with_no_usable_row_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(ParseError, match="no usable rows"):
        parse_one(path)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"   \n\n  ", "only whitespace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
    (b"caf\xe9 au lait", "not valid UTF-8 at byte 3"),
])
def test_bad_text_files_are_file_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ParseError, match=message):
        parse_one(path)


def test_discover_doc_ids_are_the_same_for_folder_and_file(tmp_path: Path) -> None:
    root = tmp_path / "curriculum"
    (root / "sub").mkdir(parents=True)
    (root / "26-lora.md").write_text("# LoRA\n\ntext")
    (root / "sub" / "deep.txt").write_text("deep")
    (root / ".hidden.md").write_text("x")
    (root / "image.png").write_bytes(b"\x89PNG")
    ids = {f.doc_id for f in discover([root])}
    assert ids == {"curriculum/26-lora", "curriculum/sub/deep"}
    assert discover([root / "26-lora.md"])[0].doc_id == "curriculum/26-lora"
    assert [f.doc_id for f in discover([root], glob="*.md")] == ["curriculum/26-lora"]


def test_discover_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="path not found"):
        discover([tmp_path / "nope"])


def test_big_text_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.txt"
    para = ("Streaming keeps memory bounded. " * 20 + "\n\n").encode()
    with path.open("wb") as fh:
        for _ in range(12_000):  # ~7.7 MB
            fh.write(para)
    tracemalloc.start()
    (parsed,) = parse_one(path, stream_bytes=1 << 20)
    assert isinstance(parsed, Parsed) and parsed.document.text == ""
    total = sum(len(b.text) for b in parsed.blocks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total > 7_000_000
    assert peak < 12 * (1 << 20), peak


@pytest.mark.slow
def test_a_100_mb_text_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "huge.txt"
    para = ("A line of a very large log file that nobody should read whole. " * 8 + "\n\n").encode()
    with path.open("wb") as fh:
        for _ in range(100 * (1 << 20) // len(para) + 1):
            fh.write(para)
    assert path.stat().st_size >= 100 * (1 << 20)
    tracemalloc.start()
    (parsed,) = parse_one(path)
    count = sum(1 for _ in parsed.blocks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count > 190_000
    assert peak < 16 * (1 << 20), peak


def test_jsonl_row_nested_too_deep_is_skipped_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + json.dumps({"text": "fine"}) + "\n")
    out = parse_one(path)
    assert [p.document.text for p in out if isinstance(p, Parsed)] == ["fine"]
    assert [p.line for p in out if isinstance(p, Problem)] == [1]
