"""The lexical half of an index: BM25 (bm25s) over title and abstract, stemmed, stopworded.

`store.py` decides where its files go; this module decides how text becomes BM25 terms,
so that documents (at build) and queries (at search) are always tokenised the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Chosen on SciFact train queries (see docs/benchmarks.md): BM25 with the title counted
# twice, Lucene-style scoring.
SETTINGS: dict[str, Any] = {
    "library": "bm25s",
    "method": "lucene",
    "k1": 1.2,
    "b": 0.75,
    "title_weight": 2,
    "stemmer": "english",
    "stopwords": "en",
}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(SETTINGS["stemmer"])


def document_text(title: str, abstract: str, title_weight: int | None = None) -> str:
    weight = SETTINGS["title_weight"] if title_weight is None else title_weight
    return " ".join([title] * weight + [abstract])


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords=SETTINGS["stopwords"], stemmer=_stemmer(),
                          return_ids=False, show_progress=False)


def build(titles: Sequence[str], abstracts: Sequence[str], settings: dict | None = None):
    """A BM25 retriever over the documents, row-aligned with the vectors."""
    import bm25s

    s = {**SETTINGS, **(settings or {})}
    texts = [document_text(t, a, s["title_weight"]) for t, a in zip(titles, abstracts, strict=True)]
    retriever = bm25s.BM25(k1=s["k1"], b=s["b"], method=s["method"])
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    retriever.index(tokenize(texts), show_progress=False)
    return retriever


def save(retriever, folder: Path) -> None:
    retriever.save(folder, allow_pickle=False, show_progress=False)


def load(folder: Path):
    import bm25s

    return bm25s.BM25.load(folder, mmap=True, allow_pickle=False, show_progress=False)


def scores(retriever, query: str) -> np.ndarray:
    """BM25 score of every document for one query (zeros where no term matches)."""
    tokens = tokenize([query])[0]
    if not tokens:
        return np.zeros(retriever.scores["num_docs"], dtype=np.float32)
    return np.asarray(retriever.get_scores(tokens), dtype=np.float32)
