"""Fusing the dense and BM25 rankings into one, with a weight chosen per query.

Both retrievers propose candidates; every candidate then gets both of its real scores,
each on a fixed scale (no per-query rescaling):

- dense: the cosine of query and paper (clipped at 0);
- BM25: the score divided by the query's ceiling, the best score any paper could reach
  for these terms (`indexer.lexical.ceiling`), so 1.0 = every term at its strongest.

and a convex combination `w * dense + (1 - w) * bm25` ranks them (Bruch, Gai and Ingber
2023: a convex combination of theoretically normalised scores beats reciprocal-rank fusion
and per-query min-max). The dense weight `w` is set per query by a small logistic model of
the query and of the two candidate lists (`query_features`): plain-language questions,
whose words are not the paper's, lean on meaning; coined names and rare terms that BM25
matches strongly lean on keywords. The model was fit by `bench/fusion.py --fit` on training
queries only (SciFact train, known-item queries of one seed, half of the hand-written
paraphrases); its held-out figures per query set are in docs/benchmarks.md.

The fused score stays on the 0-1 scale of its parts. Whether a paper is a close match at
all is decided on each side's own evidence (`Floor`), not on the weighted sum.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

MODES = ("hybrid", "dense", "bm25")
METHODS = ("adaptive", "convex", "minmax", "rrf")



@dataclass(frozen=True)
class Floor:
    """A paper is a close match when its cosine reaches `dense` or its BM25 share (score
    over the query's ceiling) reaches `bm25`: either side's own evidence, so the floor does
    not move with the per-query weight."""

    dense: float
    bm25: float


# Set in bench/fusion.py from the best scores that nonsense and off-topic queries reach,
# against the scores of the right papers for real questions (docs/benchmarks.md).
RELEVANCE_FLOOR = Floor(dense=0.40, bm25=0.6)

FEATURES = ("terms", "unknown", "question", "idf_mean", "idf_max", "bm25_top", "bm25_gap",
            "dense_top", "dense_gap", "overlap")

# Fit by `python bench/fusion.py --index <80k> --fit --scifact-windows DIR` (printed there;
# docs/benchmarks.md); standardised features -> logit of "trust meaning", mapped to a dense
# weight between LOW and HIGH.
ADAPTIVE = {
    "low": 0.1,
    "high": 1.0,
    "mean": [2.1008, 0.0198, 0.0126, 0.4119, 0.7483, 0.5701, 0.413, 0.5898, 0.1159, 0.2844],
    "scale": [0.4293, 0.0525, 0.1117, 0.1009, 0.1993, 0.2251, 0.1696, 0.1082, 0.0684, 0.2282],
    "coef": [-0.354, -0.4797, 0.2412, 0.2002, -0.7462, -3.1486, -0.5021, 0.5837, 0.6685, 0.0695],
    "intercept": -1.4255,
}

_QUESTION = re.compile(
    r"^(how|what|which|why|when|where|who|whom|whose|is|are|was|were|do|does|did|can|could|"
    r"should|would|will|has|have|any|find|ways?|papers?|methods?|approaches)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are combined.

    method: "adaptive" (convex combination with a per-query weight, the default),
        "convex" (fixed `dense_weight`), "minmax" (the pre-2026-11 blend of per-query
        min-max normalised scores, kept for comparison) or "rrf" (reciprocal rank).
    dense_weight: the weight of the dense score for "convex" and "minmax".
    pool: candidates taken from each retriever.
    rrf_k: the constant of reciprocal-rank fusion.
    """

    method: str = "adaptive"
    dense_weight: float = 0.5
    pool: int = 100
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"fusion method must be one of {', '.join(METHODS)}, "
                             f"got {self.method!r}")


DEFAULT_FUSION = Fusion()


def best_first(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` highest scores, best first; ties go to the lower index, so the
    same scores always give the same list (and shards merged by score, then row, give the
    whole index's, search/sharded.py)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - n)[len(scores) - n]  # the n-th highest score
    above = np.flatnonzero(scores > kth)
    tied = np.flatnonzero(scores == kth)[:n - len(above)]  # ascending: the lowest rows
    top = np.concatenate([above, tied])
    return top[np.lexsort((top, -scores[top]))]


def top_rows(scores: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Rows of the `n` highest scores (best first, ties to the lower row), only among
    `allowed` rows if given, and only rows with a positive score (a BM25 score of 0 means
    no term matched)."""
    if allowed is not None:
        masked = np.full_like(scores, -np.inf)
        masked[allowed] = scores[allowed]
        scores = masked
    n = min(n, int(np.count_nonzero(scores > 0)))
    return best_first(scores, n)


def is_question(text: str) -> bool:
    return text.rstrip().endswith("?") or bool(_QUESTION.match(text.lstrip()))


def query_features(
    text: str,
    n_tokens: int,
    n_unknown: int,
    idf: np.ndarray,
    dense_top: np.ndarray,
    bm25_top: np.ndarray,
    overlap: float,
) -> np.ndarray:
    """The features the adaptive weight reads, in `FEATURES` order.

    Args:
        text: the query as typed.
        n_tokens, n_unknown: BM25 tokens of the query, and how many the index never saw.
        idf: normalised IDF (0-1) of each known token (`indexer.lexical.idf`).
        dense_top: the dense side's best cosines, best first (up to 10).
        bm25_top: the BM25 side's best scores over the ceiling (0-1), best first (up to 10).
        overlap: share of the two top-10 lists in common (0-1).
    """
    def top_and_gap(x: np.ndarray) -> tuple[float, float]:
        if len(x) == 0:
            return 0.0, 0.0
        return float(x[0]), float(x[0] - x[min(9, len(x) - 1)])

    d1, dgap = top_and_gap(dense_top)
    b1, bgap = top_and_gap(bm25_top)
    return np.array([
        math.log1p(n_tokens),
        n_unknown / n_tokens if n_tokens else 0.0,
        float(is_question(text)),
        float(idf.mean()) if len(idf) else 0.0,
        float(idf.max()) if len(idf) else 0.0,
        b1,
        bgap / b1 if b1 > 0 else 0.0,
        d1,
        dgap,
        overlap,
    ], dtype=np.float64)


def adaptive_weight(features: np.ndarray, model: dict = ADAPTIVE) -> float:
    """The dense weight for one query: LOW + (HIGH - LOW) * P(meaning is the better side)."""
    z = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    logit = float(z @ np.asarray(model["coef"]) + model["intercept"])
    p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))
    return model["low"] + (model["high"] - model["low"]) * p


def overlap_at(dense_rows: np.ndarray, bm25_rows: np.ndarray, n: int = 10) -> float:
    return len(set(dense_rows[:n].tolist()) & set(bm25_rows[:n].tolist())) / n


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)


def fuse(
    dense_rows: np.ndarray,
    dense_scores: np.ndarray,
    bm25_rows: np.ndarray,
    bm25_scores: np.ndarray,
    fusion: Fusion = DEFAULT_FUSION,
    weight: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused (rows, scores), best first (ties: lower row first), over the union of both
    candidate lists.

    Args:
        dense_rows, bm25_rows: each retriever's candidates, best first.
        dense_scores: every candidate's cosine, aligned with `np.union1d(dense_rows,
            bm25_rows)` (sorted row order).
        bm25_scores: every candidate's BM25 score over the query's ceiling (0-1), aligned
            the same way ("minmax" takes raw scores too: it rescales them anyway).
        weight: the dense weight for "adaptive" (`adaptive_weight`) and "convex"; None
            takes `fusion.dense_weight`.
    """
    union = np.union1d(dense_rows, bm25_rows)
    if fusion.method == "rrf":
        fused = np.zeros(len(union))
        for rows in (dense_rows, bm25_rows):
            ranks = {int(r): i for i, r in enumerate(rows, start=1)}
            fused += np.array([1.0 / (fusion.rrf_k + ranks[int(r)]) if int(r) in ranks else 0.0
                               for r in union])
    elif fusion.method == "minmax":
        w = fusion.dense_weight
        fused = w * _minmax(dense_scores) + (1 - w) * _minmax(bm25_scores)
    else:
        w = fusion.dense_weight if weight is None else weight
        fused = w * np.clip(dense_scores, 0.0, 1.0) + (1 - w) * np.clip(bm25_scores, 0.0, 1.0)
    order = np.argsort(-fused, kind="stable")
    return union[order], fused[order]
