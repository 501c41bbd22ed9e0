"""Fusing the dense and BM25 rankings into one.

Both retrievers propose candidates; every candidate then gets both of its real scores
(dense cosine from the stored vectors, BM25 from the full score array), each normalised,
and a weighted sum ranks them. Weights were chosen on SciFact *train* queries only
(bench/relevance.py; figures in docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are combined.

    method: "blend" (weighted sum of normalised scores) or "rrf" (reciprocal rank).
    dense_weight: weight of the dense score in a blend (BM25 gets 1 - dense_weight).
    pool: candidates taken from each retriever.
    rrf_k: the constant of reciprocal-rank fusion.
    """

    method: str = "blend"
    dense_weight: float = 0.5
    pool: int = 100
    rrf_k: int = 60


DEFAULT_FUSION = Fusion()


def top_rows(scores: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Rows of the `n` highest scores (best first), only among `allowed` rows if given,
    and only rows with a positive score (a BM25 score of 0 means no term matched)."""
    if allowed is not None:
        masked = np.full_like(scores, -np.inf)
        masked[allowed] = scores[allowed]
        scores = masked
    n = min(n, int(np.count_nonzero(scores > 0)))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)


def fuse(
    dense_rows: np.ndarray,
    dense_scores: np.ndarray,
    bm25_rows: np.ndarray,
    bm25_scores: np.ndarray,
    fusion: Fusion = DEFAULT_FUSION,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused (rows, scores), best first, over the union of both candidate lists.

    Args:
        dense_rows, bm25_rows: each retriever's candidates, best first.
        dense_scores, bm25_scores: every candidate's score from each retriever, aligned with
            the union `np.union1d(dense_rows, bm25_rows)` (sorted row order).
    """
    union = np.union1d(dense_rows, bm25_rows)
    if fusion.method == "rrf":
        fused = np.zeros(len(union))
        for rows in (dense_rows, bm25_rows):
            ranks = {int(r): i for i, r in enumerate(rows, start=1)}
            fused += np.array([1.0 / (fusion.rrf_k + ranks[int(r)]) if int(r) in ranks else 0.0
                               for r in union])
    else:
        w = fusion.dense_weight
        fused = w * _minmax(dense_scores) + (1 - w) * _minmax(bm25_scores)
    order = np.argsort(-fused, kind="stable")
    return union[order], fused[order]
