"""One line: model, adapter, collections on the left; retrieval mode and k, last tokens/s and retrieval
time on the right. When the line is too narrow the left part is cut, never the numbers."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    model = reactive("–")
    adapter = reactive("base")
    collections = reactive("")
    mode = reactive("hybrid")
    k = reactive(4)
    tokens_per_s = reactive(0.0)
    retrieval_ms = reactive(0.0)
    busy = reactive("")

    def render(self) -> Content:
        model = Path(self.model).name if "/" in self.model else self.model
        busy = "[$warning]$busy[/] · " if self.busy else ""
        left = Content.from_markup(busy + "[b]$model[/] · adapter [b]$adapter[/] · [b]$cols[/]", model=model,
                                   adapter=self.adapter, cols=self.collections or "–", busy=self.busy[:40])
        speed = f"{self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else "– tok/s"
        retrieval = f"retrieval {self.retrieval_ms:.0f} ms" if self.retrieval_ms else "retrieval – ms"
        right = Content(f"  {self.mode} k={self.k} · {speed} · {retrieval}")
        room = max(8, self.content_region.width - right.cell_length)
        if left.cell_length > room:
            left = left.truncate(room, ellipsis=True)
        return left.pad_right(room - left.cell_length) + right
