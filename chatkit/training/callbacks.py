"""Trainer callbacks: a rich progress bar (loss, tokens/s, ETA), per-epoch validation lines, and Ctrl-C
that stops at the end of the current step with a resumable checkpoint."""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any

# Seconds between progress lines when stderr is not a terminal (a log file); tests set it to 0.
LINE_EVERY_S = float(os.environ.get("CHATKIT_PROGRESS_EVERY_S", "30"))


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


def progress_callback(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class ProgressCallback(_callback_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task: Any = None
            self.started = 0.0
            self.start_tokens = 0
            self.start_step = 0
            self.loss = float("nan")
            self.tokens_per_s = 0.0
            self.epochs: list[dict[str, float]] = []
            self.last_line = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            self.last_line = time.perf_counter()
            self.progress = Progress(
                TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="-", tps="-")
            self.started = time.perf_counter()
            self.start_tokens = state.num_input_tokens_seen or 0
            self.start_step = state.global_step

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is None:
                return
            elapsed = time.perf_counter() - self.started
            tokens = (state.num_input_tokens_seen or 0) - self.start_tokens
            self.tokens_per_s = tokens / elapsed if elapsed > 0 else 0.0
            loss = "-" if math.isnan(self.loss) else f"{self.loss:.3f}"
            self.progress.update(self.task, completed=state.global_step, loss=loss, tps=f"{self.tokens_per_s:,.0f}")
            # A log file or pipe gets no live bar, so it gets a line every half minute instead.
            if not console.is_terminal and time.perf_counter() - self.last_line >= LINE_EVERY_S:
                self.last_line = time.perf_counter()
                done = state.global_step - self.start_step
                left = (state.max_steps - state.global_step) * elapsed / done if done else 0.0
                console.print(f"step {state.global_step}/{state.max_steps}: loss {loss}, {self.tokens_per_s:,.0f} tok/s, "
                              f"ETA {left / 60:.0f} min", highlight=False)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
            if not metrics or "eval_loss" not in metrics or not state.is_world_process_zero:
                return
            loss = float(metrics["eval_loss"])
            row = {"epoch": round(float(state.epoch or 0), 2), "val_loss": loss, "perplexity": math.exp(min(loss, 50.0))}
            self.epochs.append(row)
            console.print(f"epoch {row['epoch']:g}: val loss {loss:.4f}, perplexity {row['perplexity']:.2f}", highlight=False)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return ProgressCallback()


def interrupt_callback() -> Any:
    class InterruptCallback(_callback_base()):  # type: ignore[misc]
        """First Ctrl-C: finish this step, save a checkpoint, stop. Second Ctrl-C: stop now."""

        def __init__(self) -> None:
            self.interrupted = False
            self._previous: Any = None

        def _handle(self, signum: int, frame: Any) -> None:
            if self.interrupted:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.interrupted = True

        def install(self) -> None:
            """Called before training starts, so a Ctrl-C during set-up also ends in a clean stop."""
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
            except ValueError:  # not the main thread: leave Ctrl-C alone
                self._previous = None

        def restore(self) -> None:
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.interrupted:
                control.should_save = True
                control.should_training_stop = True

    return InterruptCallback()
