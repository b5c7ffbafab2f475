"""Progress bars and sizes on the terminal, shared by the verbs that index (index, eval retrieval)."""

from __future__ import annotations

from typing import Any


class RichReporter:
    """Progress bars on stderr: files parsed (docs/s) and chunks embedded (chunks/s); warnings above them."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                                 transient=False, disable=not console.is_terminal)
        self.tasks: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self.progress.start()

    def start(self, name: str, total: int | None, unit: str) -> None:
        if name in self.tasks:
            return
        labels = {"parse": "parsing", "embed": "embedding", "index": "indexing"}
        self.units[name] = unit
        self.tasks[name] = self.progress.add_task(labels.get(name, name), total=total, rate="")

    def advance(self, name: str, n: int = 1) -> None:
        task_id = self.tasks.get(name)
        if task_id is None:
            return
        self.progress.advance(task_id, n)
        task = self.progress.tasks[task_id]
        speed = task.speed
        unit = "docs" if self.units[name] == "files" else self.units[name]
        self.progress.update(task_id, rate=f"{speed:,.1f} {unit}/s" if speed else "")

    def warn(self, message: str) -> None:
        self.progress.console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True)

    def close(self) -> None:
        for task_id in self.tasks.values():
            task = self.progress.tasks[task_id]
            if task.total is None:
                self.progress.update(task_id, total=task.completed or 1, completed=task.completed or 1)
        self.progress.stop()


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
