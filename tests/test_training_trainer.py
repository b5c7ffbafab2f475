"""chatkit's CPU loss (answer positions only through the LM head) gives TRL's loss and TRL's LoRA gradients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit.config import Settings
from chatkit.prompting import Passage, PromptTurn, build_messages
from chatkit.training.formats import Row
from chatkit.training.prepare import prepare


def _rows() -> list[Row]:
    rag = build_messages([PromptTurn("What does LoRA train?", (Passage("LoRA", "", "LoRA learns two low-rank matrices."),
                                                               Passage("FAISS", "", "FAISS searches vectors.")),
                                     "Two small low-rank matrices [1].")])
    return [
        Row(1, "rag", tuple((m["role"], m["content"]) for m in rag)),
        Row(2, "openai", (("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello there."),
                          ("user", "What is SFT?"), ("assistant", "Supervised fine-tuning on example answers."))),
        Row(3, "openai", (("user", "Name a vector index."), ("assistant", "FAISS."))),
    ]


def _loss_and_grads(trainer: Any, compute_loss: Any, batch: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    model = trainer.model
    model.zero_grad()
    loss = compute_loss(model, batch, num_items_in_batch=int((batch["labels"][:, 1:] != -100).sum()))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


def test_answer_only_head_matches_trl_loss_and_gradients(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from chatkit.training.build import build_trainer
    from chatkit.training.trainer import ChatkitSFTTrainer

    torch.manual_seed(0)
    settings = Settings()
    settings.training.lora_dropout = 0.0  # dropout would make the two forward passes differ
    settings.training.batch_size = 3
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prepared = prepare(tokenizer, _rows(), 512)
    from datasets import Dataset

    data = Dataset.from_list(prepared.as_records())
    trainer = build_trainer(settings, str(tiny_model_dir), tokenizer, tmp_path / "run", False, 1, data, None, [])
    assert isinstance(trainer, ChatkitSFTTrainer)
    # LoRA B starts at zero, which would leave A without gradient: give B values so every weight is checked.
    for name, param in trainer.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 3 and int((batch["labels"] == -100).sum()) > 0

    ours, our_grads = _loss_and_grads(trainer, trainer.compute_loss, batch)
    theirs, their_grads = _loss_and_grads(trainer, lambda *a, **k: SFTTrainer.compute_loss(trainer, *a, **k), batch)

    assert ours == pytest.approx(theirs, rel=1e-5)
    assert our_grads.keys() == their_grads.keys() and len(our_grads) > 0
    for name, grad in our_grads.items():
        assert torch.allclose(grad, their_grads[name], rtol=1e-4, atol=1e-6), name
    assert trainer._metrics["train"]["mean_token_accuracy"] and trainer._metrics["train"]["num_tokens"]
