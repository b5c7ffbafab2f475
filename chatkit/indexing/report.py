"""How ingestion reports progress and problems, and the summary it ends with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Reporter(Protocol):
    def start(self, name: str, total: int | None, unit: str) -> None: ...

    def advance(self, name: str, n: int = 1) -> None: ...

    def warn(self, message: str) -> None: ...

    def close(self) -> None: ...


class QuietReporter:
    """Sends warnings (and nothing else) to a callable, e.g. a UI's status line; or drops them."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.say = say

    def start(self, name: str, total: int | None, unit: str) -> None:
        pass

    def advance(self, name: str, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        if self.say:
            self.say(f"warning: {message}")

    def close(self) -> None:
        pass


@dataclass
class Summary:
    collection: str
    added: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0
    cached: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.failures.append(reason)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def line(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.skipped} unchanged"]
        if self.removed:
            parts.append(f"{self.removed} removed")
        parts.append(f"{self.failed} failed")
        rate = f", {self.embedded / self.seconds:.0f} chunks/s" if self.embedded and self.seconds > 0 else ""
        return (f"{self.collection}: {', '.join(parts)}; {self.chunks} chunks written "
                f"({self.embedded} embedded, {self.cached} from cache) in {self.seconds:.1f} s{rate}")

    def as_dict(self) -> dict[str, object]:
        return {"collection": self.collection, "added": self.added, "updated": self.updated, "unchanged": self.skipped,
                "removed": self.removed, "failed": self.failed, "chunks": self.chunks, "embedded": self.embedded,
                "cached": self.cached, "seconds": round(self.seconds, 3), "failures": self.failures}
