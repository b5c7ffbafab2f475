"""Training progress: the domain callback reports steps and epochs through TrainingProgress and keeps the
validation rows; the command line turns them into a bar or, off a terminal, plain lines."""

from __future__ import annotations

import io
import math
from typing import Any

from rich.console import Console

from chatkit.cli.train import RichTrainingProgress
from chatkit.training.callbacks import progress_callback


class Recorded:
    """A TrainingProgress that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def started(self, total_steps: int, done_steps: int) -> None:
        self.calls.append(("started", (total_steps, done_steps)))

    def step(self, step: int, total: int, loss: float, tokens_per_s: float, eta_s: float) -> None:
        self.calls.append(("step", (step, total, loss, tokens_per_s, eta_s)))

    def epoch(self, row: dict[str, float]) -> None:
        self.calls.append(("epoch", (row,)))

    def finished(self) -> None:
        self.calls.append(("finished", ()))


def test_the_callback_reports_steps_epochs_and_keeps_the_validation_rows() -> None:
    from transformers import TrainerControl, TrainerState

    seen = Recorded()
    callback = progress_callback(seen)
    state, control = TrainerState(max_steps=4, global_step=1, num_input_tokens_seen=0), TrainerControl()
    callback.on_train_begin(None, state, control)
    state.global_step, state.num_input_tokens_seen = 2, 500
    callback.on_step_end(None, state, control)
    callback.on_log(None, state, control, logs={"loss": 1.25})
    state.global_step, state.num_input_tokens_seen, state.epoch = 3, 1000, 1.0
    callback.on_step_end(None, state, control)
    callback.on_evaluate(None, state, control, metrics={"eval_loss": 2.0})
    callback.on_train_end(None, state, control)

    names = [name for name, _ in seen.calls]
    assert names == ["started", "step", "step", "epoch", "finished"]
    assert seen.calls[0][1] == (4, 1)  # resumed at step 1 of 4
    step, total, loss, tokens_per_s, eta_s = seen.calls[1][1]
    assert (step, total) == (2, 4) and math.isnan(loss) and tokens_per_s > 0 and eta_s > 0
    assert seen.calls[2][1][2] == 1.25
    row = {"epoch": 1.0, "val_loss": 2.0, "perplexity": math.exp(2.0)}
    assert seen.calls[3][1] == (row,) and callback.epochs == [row]


def test_off_a_terminal_the_cli_prints_step_and_epoch_lines(monkeypatch: Any) -> None:
    monkeypatch.setenv("CHATKIT_PROGRESS_EVERY_S", "0")
    out = io.StringIO()
    progress = RichTrainingProgress(Console(file=out, force_terminal=False, width=200))
    progress.started(16, 0)
    progress.step(8, 16, float("nan"), 1234.4, 0.0)
    progress.step(16, 16, 0.5, 2000.0, 120.0)
    progress.epoch({"epoch": 1.0, "val_loss": 2.0, "perplexity": 7.389})
    progress.finished()
    progress.finished()  # the CLI calls it again after run_sft; twice is harmless
    text = out.getvalue()
    assert "step 8/16: loss -, 1,234 tok/s, ETA 0 min" in text
    assert "step 16/16: loss 0.500, 2,000 tok/s, ETA 2 min" in text
    assert "epoch 1: val loss 2.0000, perplexity 7.39" in text
