"""What the app remembers between runs: the open conversation, the unsent draft, the theme, the
retrieval choices. A small JSON file; a broken one is ignored, never fatal."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class UIState:
    conversation_id: int | None = None
    draft: str = ""
    theme: str = "textual-dark"
    mode: str | None = None
    k: int | None = None
    collections: list[str] = field(default_factory=list)
    prompt_history: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> UIState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data = asdict(self) | {"prompt_history": self.prompt_history[-200:]}
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # a crash mid-write leaves the old file, not half a file
