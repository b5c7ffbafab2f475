"""Run folders under `<data dir>/runs/NAME`: the checkpoints of a training run until its adapter is
published, so an interrupted run can be resumed with the same data and base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatkit.config import Paths
from chatkit.errors import InputError
from chatkit.retrieval.atomic import atomic_file

RUN_FILE = "run.json"


def runs_dir(paths: Paths) -> Path:
    return paths.home / "runs"


def last_checkpoint(run_dir: Path) -> Path | None:
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
             and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def find_resumable(paths: Paths, name: str | None) -> tuple[Path, Path]:
    """(run folder, its last checkpoint): the named run, or the most recent one with a checkpoint."""
    root = runs_dir(paths)
    candidates = [root / name] if name else sorted((p for p in root.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for run in candidates:
        ckpt = last_checkpoint(run) if run.is_dir() else None
        if ckpt is not None:
            return run, ckpt
    which = f"for run '{name}'" if name else "in " + str(root)
    raise InputError(f"no checkpoint to resume {which}", "start training without --resume (checkpoints are saved each epoch and on Ctrl-C)")


def write_run(run_dir: Path, info: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(info, indent=2)
    atomic_file(run_dir / RUN_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_run(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def check_resume(run_dir: Path, expected: dict[str, Any]) -> None:
    """Resuming on other data or another base model would silently train something else."""
    saved = read_run(run_dir)
    for key, what in (("train_sha256", "the training data"), ("val_sha256", "the validation data"),
                      ("base_fingerprint", "the base model")):
        if saved.get(key) != expected.get(key):
            raise InputError(f"cannot resume run '{run_dir.name}': {what} changed since its checkpoint",
                             "resume with the same --data/--val and models.dialogue, or start a new run with another --name")
