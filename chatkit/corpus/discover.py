"""Which files a PATH... argument means, and the doc id each one gets."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from chatkit.errors import InputError

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "rst",
            ".html": "html", ".htm": "html", ".pdf": "pdf", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class Found:
    path: Path  # absolute
    doc_id: str
    kind: str  # a SUFFIXES value, or "" for an unsupported file given by name
    root: Path  # the folder argument it was found under (the file's parent for a file argument)


def _doc_id(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return f"{root.name}/{rel.as_posix()}"


def discover(paths: list[str | Path], glob: str | None = None) -> list[Found]:
    """Every supported file under the given files and folders, sorted; refuses a missing path."""
    found: dict[Path, Found] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"path not found: {raw}", "check the spelling, or give an existing file or folder")
        path = path.resolve()
        if path.is_file():
            kind = SUFFIXES.get(path.suffix.lower(), "")
            found.setdefault(path, Found(path, _doc_id(path.parent, path), kind, path.parent))
            continue
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(path)
            if any(part.startswith(".") for part in rel.parts) or not child.is_file():
                continue
            kind = SUFFIXES.get(child.suffix.lower(), "")
            if not kind:
                continue
            if glob and not (fnmatch.fnmatch(rel.as_posix(), glob) or fnmatch.fnmatch(child.name, glob)):
                continue
            found.setdefault(child, Found(child, _doc_id(path, child), kind, path))
    return sorted(found.values(), key=lambda f: str(f.path))
