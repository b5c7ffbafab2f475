"""Evaluation: answer metrics without an LLM judge, comparisons, reports."""
