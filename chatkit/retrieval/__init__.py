"""Embedding, FAISS + BM25 indexes, hybrid search."""
