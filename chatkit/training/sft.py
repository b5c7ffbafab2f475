"""`chatkit train sft`: TRL SFTTrainer + PEFT LoRA on assistant-only labels, published to the registry."""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatkit.config import CHECKPOINT_ABOVE_TOKENS, Paths, Settings, TrainingConfig
from chatkit.errors import AdapterError, DataError, InputError
from chatkit.training import registry, runs
from chatkit.training.base import BaseModel, load_tokenizer, resolve_base
from chatkit.training.formats import Row
from chatkit.training.memory import limit_malloc_arenas
from chatkit.training.portable import write_portable_base_name
from chatkit.training.prepare import Prepared, lines_text, prepare
from chatkit.training.rows import LoadedFile, load_clean

if TYPE_CHECKING:
    from chatkit.training.callbacks import TrainingProgress

MIN_ROWS_FOR_SPLIT = 20


@dataclass(frozen=True)
class SftRequest:
    data: Path
    val: Path | None = None
    name: str | None = None
    resume: bool = False
    max_steps: int | None = None


@dataclass
class SftResult:
    name: str
    path: Path | None  # the published adapter; None when interrupted
    metrics: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    checkpoint: Path | None = None


def split_rows(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    if fraction <= 0 or len(rows) < MIN_ROWS_FOR_SPLIT:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(rows) * fraction))
    val = set(order[:n_val])
    return [r for i, r in enumerate(rows) if i not in val], [r for i, r in enumerate(rows) if i in val]


def _prepared(tokenizer: Any, rows: list[Row], max_length: int, what: str, say: Callable[[str], None]) -> Prepared:
    p = prepare(tokenizer, rows, max_length)
    if p.errors:
        line, msg = p.errors[0]
        raise DataError(f"{what} line {line}: {msg}", "`chatkit train validate FILE` checks every row")
    if p.trimmed:
        say(f"{what}: {len(p.trimmed)} rows over max_length {max_length} fit after trimming passages (lines {lines_text(p.trimmed)})")
    if p.too_long:
        say(f"[yellow]{what}: skipping {len(p.too_long)} rows that exceed max_length {max_length} even with passages "
            f"trimmed[/] (lines {lines_text([n for n, _ in p.too_long])}); raise training.max_length to keep them")
    if not p.examples:
        raise DataError(f"{what}: no row fits training.max_length={max_length}", "raise training.max_length")
    return p


def _dataset(prepared: Prepared) -> Any:
    from datasets import Dataset

    return Dataset.from_list(prepared.as_records())


def _run_name(req: SftRequest, paths: Paths, expected: dict[str, Any], say: Callable[[str], None]) -> tuple[str, Path | None]:
    named = runs.runs_dir(paths) / req.name if req.name else None
    if req.resume and named is not None and (named / runs.RUN_FILE).is_file() and runs.last_checkpoint(named) is None:
        # Stopped before its first checkpoint: nothing to resume, so the rerun is a fresh start of the same run.
        runs.check_resume(named, expected)
        say(f"run '{named.name}' stopped before its first checkpoint; starting it from the beginning")
        return named.name, None
    if req.resume:
        run_dir, ckpt = runs.find_resumable(paths, req.name)
        runs.check_resume(run_dir, expected)
        return run_dir.name, ckpt
    name = registry.check_name(req.name or time.strftime("sft-%Y%m%d-%H%M%S"))
    if registry.adapter_path(paths, name).exists():
        raise AdapterError(f"adapter '{name}' already exists", f"choose another --name, or `chatkit adapters rm {name}` first")
    if runs.last_checkpoint(runs.runs_dir(paths) / name) is not None:
        raise InputError(f"run '{name}' has a checkpoint from an interrupted run",
                           "add --resume to continue it, or choose another --name")
    return name, None


def resolve_checkpointing(cfg: TrainingConfig, longest_row: int) -> TrainingConfig:
    """`auto` becomes true or false from the data, so the run's recorded config says what was done."""
    if cfg.gradient_checkpointing != "auto":
        return cfg
    return dataclasses.replace(cfg, gradient_checkpointing=str(longest_row > CHECKPOINT_ABOVE_TOKENS).lower())


def run_sft(settings: Settings, paths: Paths, req: SftRequest, progress: TrainingProgress,
            say: Callable[[str], None]) -> SftResult:
    """`progress` hears of every step and epoch; `say` gets the notes worth a line."""
    cfg = settings.training
    limit_malloc_arenas(cfg.malloc_arenas)
    train_file = load_clean(req.data)
    val_file = load_clean(req.val) if req.val else None
    base = resolve_base(settings, paths, say)
    expected = {"train_sha256": train_file.sha256, "val_sha256": val_file.sha256 if val_file else None,
                "base_fingerprint": base.fingerprint}
    name, checkpoint = _run_name(req, paths, expected, say)
    run_dir = runs.runs_dir(paths) / name
    tokenizer = load_tokenizer(base)
    train, val = _split_and_prepare(tokenizer, train_file, val_file, cfg, say)
    cfg = resolve_checkpointing(cfg, max(len(e.input_ids) for e in train.examples))
    settings = dataclasses.replace(settings, training=cfg)

    from chatkit.training.build import build_trainer, use_bf16
    from chatkit.training.callbacks import interrupt_callback, progress_callback

    bf16 = use_bf16(cfg, paths.cache)
    recorder, interrupt = progress_callback(progress), interrupt_callback()
    trainer = build_trainer(settings, base.path, tokenizer, run_dir, bf16, req.max_steps,
                            _dataset(train), _dataset(val) if val else None, [recorder, interrupt])
    main = trainer.is_world_process_zero()
    interrupt.install()
    try:
        if main:
            runs.write_run(run_dir, {**expected, "name": name, "data": str(req.data), "val": str(req.val or ""),
                                     "config": dataclasses.asdict(cfg), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        say(f"training '{name}' on {len(train.examples)} rows ({train.trained_tokens} trained tokens), "
            f"{'bf16 autocast' if bf16 else 'fp32'}, LoRA r={cfg.lora_r}" + (f", resuming from {checkpoint.name}" if checkpoint else ""))
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        interrupt.restore()
    if interrupt.interrupted:
        return SftResult(name, None, interrupted=True, checkpoint=runs.last_checkpoint(run_dir))

    metrics = _metrics(trainer, output, recorder.epochs, train, val)
    if not main:
        return SftResult(name, None, metrics)
    meta = _metadata(name, base, cfg, train_file, val_file, train, val, metrics, bf16)
    path = registry.publish(paths, name, lambda tmp: _write_adapter(trainer, tmp, meta))
    shutil.rmtree(run_dir, ignore_errors=True)
    return SftResult(name, path, metrics)


def _split_and_prepare(tokenizer: Any, train_file: LoadedFile, val_file: LoadedFile | None, cfg: Any,
                       say: Callable[[str], None]) -> tuple[Prepared, Prepared | None]:
    if val_file:
        train_rows, val_rows = train_file.rows, val_file.rows
    else:
        train_rows, val_rows = split_rows(train_file.rows, cfg.val_fraction, cfg.seed)
        if val_rows:
            say(f"holding out {len(val_rows)} of {len(train_file.rows)} rows for validation (training.val_fraction={cfg.val_fraction})")
    train = _prepared(tokenizer, train_rows, cfg.max_length, str(train_file.path), say)
    val_name = f"{(val_file or train_file).path} (validation)"
    return train, _prepared(tokenizer, val_rows, cfg.max_length, val_name, say) if val_rows else None


def _metrics(trainer: Any, output: Any, epochs: list[dict[str, float]], train: Prepared, val: Prepared | None) -> dict[str, Any]:
    state = trainer.state
    elapsed = float(output.metrics.get("train_runtime", 0.0))
    out: dict[str, Any] = {"train_loss": round(float(output.training_loss), 4), "steps": state.global_step,
                           "epochs": round(float(state.epoch or 0), 2), "train_seconds": round(elapsed, 1),
                           "tokens_per_s": round((state.num_input_tokens_seen or 0) / elapsed, 1) if elapsed > 0 else 0.0,
                           "train_rows": len(train.examples), "trained_tokens": train.trained_tokens, "per_epoch": epochs}
    if val is not None:
        best = state.best_metric
        if best is None:  # no epoch ended (--max-steps) or per-epoch evaluation is off: measure once
            best = float(trainer.evaluate()["eval_loss"])
        out.update({"val_loss": round(float(best), 4), "val_perplexity": round(math.exp(min(float(best), 50.0)), 3),
                    "val_rows": len(val.examples)})
    return out


def _metadata(name: str, base: BaseModel, cfg: Any, train_file: LoadedFile, val_file: LoadedFile | None,
              train: Prepared, val: Prepared | None, metrics: dict[str, Any], bf16: bool) -> dict[str, Any]:
    import peft
    import transformers
    import trl

    def data(f: LoadedFile | None, p: Prepared | None) -> dict[str, Any] | None:
        if f is None:
            return None
        return {"path": str(f.path), "sha256": f.sha256, "rows": len(f.rows), "formats": f.formats,
                "trimmed_lines": p.trimmed if p else [], "skipped_lines": [n for n, _ in p.too_long] if p else []}

    return {
        "name": name, "base_model": base.model_id, "base_path": base.path, "base_fingerprint": base.fingerprint,
        "data": {"train": data(train_file, train), "val": data(val_file, val)}, "config": dataclasses.asdict(cfg),
        "precision": "bf16" if bf16 else "fp32", "metrics": metrics, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"trl": trl.__version__, "peft": peft.__version__, "transformers": transformers.__version__},
    }


def _write_adapter(trainer: Any, folder: Path, meta: dict[str, Any]) -> None:
    import json

    trainer.model.save_pretrained(str(folder), safe_serialization=True)
    write_portable_base_name(folder, str(meta["base_model"]))
    (folder / registry.META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (folder / "training-log.json").write_text(json.dumps(trainer.state.log_history, indent=2), encoding="utf-8")
