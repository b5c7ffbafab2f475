"""Trainer callbacks: progress (loss, tokens/s, ETA, per-epoch validation) reported to whoever draws it, and
Ctrl-C that stops at the end of the current step with a resumable checkpoint."""

from __future__ import annotations

import math
import signal
import time
from typing import Any, Protocol


class TrainingProgress(Protocol):
    """What a caller sees while training runs (the CLI draws a bar); loss is NaN until the first log."""

    def started(self, total_steps: int, done_steps: int) -> None: ...
    def step(self, step: int, total: int, loss: float, tokens_per_s: float, eta_s: float) -> None: ...
    def epoch(self, row: dict[str, float]) -> None: ...
    def finished(self) -> None: ...


class NoTrainingProgress:
    def started(self, total_steps: int, done_steps: int) -> None:
        pass

    def step(self, step: int, total: int, loss: float, tokens_per_s: float, eta_s: float) -> None:
        pass

    def epoch(self, row: dict[str, float]) -> None:
        pass

    def finished(self) -> None:
        pass


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


def progress_callback(progress: TrainingProgress) -> Any:
    """Records the loss, tokens/s and per-epoch validation rows (`.epochs`) and passes them on to `progress`."""

    class ProgressCallback(_callback_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.reporting = False
            self.started = 0.0
            self.start_tokens = 0
            self.start_step = 0
            self.loss = float("nan")
            self.tokens_per_s = 0.0
            self.epochs: list[dict[str, float]] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            self.reporting = True
            self.started = time.perf_counter()
            self.start_tokens = state.num_input_tokens_seen or 0
            self.start_step = state.global_step
            progress.started(state.max_steps, state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not self.reporting:
                return
            elapsed = time.perf_counter() - self.started
            tokens = (state.num_input_tokens_seen or 0) - self.start_tokens
            self.tokens_per_s = tokens / elapsed if elapsed > 0 else 0.0
            done = state.global_step - self.start_step
            eta_s = (state.max_steps - state.global_step) * elapsed / done if done else 0.0
            progress.step(state.global_step, state.max_steps, self.loss, self.tokens_per_s, eta_s)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
            if not metrics or "eval_loss" not in metrics or not state.is_world_process_zero:
                return
            loss = float(metrics["eval_loss"])
            row = {"epoch": round(float(state.epoch or 0), 2), "val_loss": loss, "perplexity": math.exp(min(loss, 50.0))}
            self.epochs.append(row)
            progress.epoch(row)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.reporting:
                self.reporting = False
                progress.finished()

    return ProgressCallback()


def interrupt_callback() -> Any:
    class InterruptCallback(_callback_base()):  # type: ignore[misc]
        """First Ctrl-C (or SIGTERM): finish this step, save a checkpoint, stop. Second one: stop now."""

        def __init__(self) -> None:
            self.interrupted = False
            self._previous: dict[int, Any] = {}

        def _handle(self, signum: int, frame: Any) -> None:
            if self.interrupted:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.interrupted = True

        def install(self) -> None:
            """Called before training starts, so a Ctrl-C during set-up also ends in a clean stop."""
            try:
                self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
            except ValueError:  # not the main thread: leave the signals alone
                self._previous = {}

        def restore(self) -> None:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._previous = {}

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.interrupted:
                control.should_save = True
                control.should_training_stop = True

    return InterruptCallback()
