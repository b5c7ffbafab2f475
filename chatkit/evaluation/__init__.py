"""Evaluation: answer metrics without an LLM judge, retrieval evaluation (the one definition of ranking metrics), comparisons, reports."""
