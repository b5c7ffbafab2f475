"""Builds the SFT trainer from TrainingConfig: the PEFT LoRA config, the TRL SFTConfig and the base model, for CPU or CUDA."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chatkit.config import TrainingConfig
from chatkit.errors import ConfigError, ModelError


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def checkpointing(cfg: TrainingConfig) -> bool:
    """Gradient checkpointing on? `auto` is resolved from the data by training.sft before this is asked."""
    return cfg.gradient_checkpointing == "true"


def use_bf16(cfg: TrainingConfig, cache_dir: Path | None) -> bool:
    """bf16 autocast only where it is fast: CUDA with bf16, or a CPU where bf16 matmuls measured faster.

    A CPU without bf16 instructions ran a LoRA step 16x slower in bf16 than in fp32.
    """
    import torch

    if cfg.bf16 in ("true", "false"):
        return cfg.bf16 == "true"
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    from chatkit.generation.device import pick_dtype

    return pick_dtype("auto", cache_dir) == "bfloat16"


def lora_config(cfg: TrainingConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")


def check_target_modules(model: Any, cfg: TrainingConfig) -> None:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in cfg.target_modules if m not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, mod in model.named_modules() if type(mod).__name__ == "Linear"})
        raise ConfigError(f"training.target_modules {missing} are not in this model",
                          f"this model's linear layers: {', '.join(linear[:12])}")


def quiet_libraries() -> None:
    """chatkit draws its own progress; the dataset-map bars and the per-log dict prints would garble it."""
    import warnings

    import datasets
    import transformers

    # Deprecation notices about the libraries' own internals, which users cannot act on.
    warnings.filterwarnings("ignore", message=r".*(gradient|activation)_checkpointing.*", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def load_base_model(path: str, cfg: TrainingConfig, bf16: bool, threads: int = 0) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if threads > 0:
        torch.set_num_threads(threads)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if cfg.quantization == "nf4":
        if not torch.cuda.is_available():
            raise ConfigError("training.quantization=nf4 (QLoRA) needs a CUDA GPU", "use configs/sft-cpu.yaml on this machine")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise ConfigError("QLoRA needs bitsandbytes", "pip install 'chatkit[gpu]'") from None
        compute = torch.bfloat16 if bf16 else torch.float16
        # Under `accelerate launch` each process must hold its own copy on its own GPU.
        kwargs = {"dtype": compute, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))},
                  "quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute)}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the base model from {path}: {str(exc).splitlines()[0][:160]}",
                         "check models.dialogue") from None
    model.config.use_cache = False  # the KV cache only costs memory while training
    if cfg.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing(cfg))
    check_target_modules(model, cfg)
    return model


def sft_config(cfg: TrainingConfig, out_dir: Path, *, has_eval: bool, bf16: bool, max_steps: int | None) -> Any:
    from trl import SFTConfig

    evaluate = has_eval and cfg.eval_every_epoch
    return SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=cfg.epochs,
        max_steps=max_steps if max_steps else -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        seed=cfg.seed,
        max_length=cfg.max_length,
        packing=cfg.packing,
        pad_to_multiple_of=cfg.pad_to_multiple_of or None,
        # SFTConfig turns these two on by default; here they follow the config.
        activation_checkpointing=checkpointing(cfg),
        bf16=bf16,
        optim=cfg.optim,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="epoch",
        save_total_limit=2 if evaluate else 1,
        load_best_model_at_end=evaluate,
        metric_for_best_model="eval_loss" if evaluate else None,
        greater_is_better=False if evaluate else None,
        logging_steps=cfg.logging_steps,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda_available(),
        dataloader_pin_memory=cuda_available(),
    )


def build_trainer(settings: Any, base_path: str, tokenizer: Any, run_dir: Path, bf16: bool, max_steps: int | None,
                  train_dataset: Any, eval_dataset: Any, callbacks: list[Any]) -> Any:
    from transformers import PrinterCallback

    from chatkit.training.trainer import ChatkitSFTTrainer

    cfg = settings.training
    quiet_libraries()
    model = load_base_model(base_path, cfg, bf16, settings.models.threads)
    trainer = ChatkitSFTTrainer(
        model=model, args=sft_config(cfg, run_dir, has_eval=eval_dataset is not None, bf16=bf16, max_steps=max_steps),
        train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=tokenizer,
        peft_config=lora_config(cfg), callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer
