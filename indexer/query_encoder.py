"""Query encoders for the search path (being replaced by an on-disk OpenVINO cache)."""

from __future__ import annotations


def query_encoder(model: str | None = None):
    """The encoder for one query at a time: one thread (bench/threads.py)."""
    from indexer.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, threads=1, fast_queries=True)
