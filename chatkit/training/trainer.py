"""SFTTrainer with a CPU loss that projects only the trained positions onto the vocabulary.

Imported lazily by training.build: it pulls in torch and TRL at import time.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer


class ChatkitSFTTrainer(SFTTrainer):
    """TRL's fused LM head scores every position on devices without Triton (all of a CPU run), in fp32 tiles, with
    entropy: for RAG rows, where about one token in eight is the answer, that was a third of each step. Here the
    backbone's hidden states at the answer positions alone go through the LM head; the loss is the same sum of
    token NLLs over the same count (`num_items_in_batch`), so the gradients match TRL's."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if return_outputs or not model.training or self.accelerator.num_processes > 1 or inputs["input_ids"].is_cuda:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        causal_lm = self.accelerator.unwrap_model(model)
        if hasattr(causal_lm, "get_base_model"):  # PEFT: the LoRA layers sit inside the wrapped model
            causal_lm = causal_lm.get_base_model()
        backbone = getattr(causal_lm, causal_lm.base_model_prefix)
        hidden = backbone(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                          position_ids=inputs.get("position_ids"), use_cache=False).last_hidden_state[:, :-1]
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        targets = labels[mask]
        head = causal_lm.get_output_embeddings()
        # fp32 like TRL's tiles: bf16 logits would bias the loss; with only the answer rows the cost is small.
        with torch.autocast(hidden.device.type, enabled=False):
            logits = torch.nn.functional.linear(hidden[mask].float(), head.weight.float(),
                                                None if head.bias is None else head.bias.float())
        count = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
        self._log_metrics(logits.detach(), targets, inputs)
        return loss

    def _log_metrics(self, logits: torch.Tensor, targets: torch.Tensor, inputs: dict[str, Any]) -> None:
        """The figures TRL logs for a step: token accuracy, entropy, tokens seen."""
        n = max(len(targets), 1)
        log_p = torch.log_softmax(logits, dim=-1)
        metrics = self._metrics["train"]
        metrics["mean_token_accuracy"].append(float((logits.argmax(-1) == targets).sum()) / n)
        metrics["entropy"].append(float(-(log_p.exp() * log_p).sum()) / n)
        mask = inputs.get("attention_mask")
        self._total_train_tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
        metrics["num_tokens"] = [self._total_train_tokens]
