"""Fine-tuning: training data formats and checks, assistant-only labels, TRL SFT + LoRA, the adapter registry.

Heavy libraries (torch, transformers, trl, peft, datasets) are imported inside functions only.
"""
