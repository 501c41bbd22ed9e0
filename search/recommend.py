""""More like these": turn a set of liked (and disliked) papers into one ranking direction.

Two ways, measured against each other in `bench/recommend.py`:

- **Rocchio**: the mean of the liked papers' vectors minus `beta` times the mean of the
  disliked ones, normalised; the index is ranked by inner product with it.
- **SVM** (as arxiv-sanity does per tag): a linear SVM separates the liked papers from the
  disliked ones and a seeded random background sample of the index; its weight vector is
  the ranking direction. Ranking by `w . x` equals ranking by the SVM's decision function
  (the bias is the same for every paper), so the FAISS index serves it like any query.

Either way the result is one unit vector, so filters, sorting and the approximate index
work exactly as they do for a text query.
"""

from __future__ import annotations

import numpy as np

METHODS = ("rocchio", "svm")
DEFAULT_METHOD = "rocchio"
ROCCHIO_BETA = 0.5
SVM_BACKGROUND = 5000
SVM_C = 0.1


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)


def rocchio(liked: np.ndarray, disliked: np.ndarray, beta: float = ROCCHIO_BETA) -> np.ndarray:
    """Unit direction: mean(liked) - beta * mean(disliked)."""
    direction = np.asarray(liked, dtype=np.float32).mean(axis=0)
    if len(disliked):
        direction = direction - beta * np.asarray(disliked, dtype=np.float32).mean(axis=0)
    return _unit(direction)


def svm(liked: np.ndarray, disliked: np.ndarray, background: np.ndarray,
        c: float = SVM_C, seed: int = 0) -> np.ndarray:
    """Unit weight vector of a linear SVM: liked (+1) against disliked and background (-1).

    Disliked papers weigh as much in all as the whole background, so that one "not this"
    moves the ranking as much as the user meant.
    """
    from sklearn.svm import LinearSVC

    liked = np.asarray(liked, dtype=np.float32)
    negatives = [np.asarray(background, dtype=np.float32)]
    weights = [np.ones(len(background))]
    if len(disliked):
        negatives.append(np.asarray(disliked, dtype=np.float32))
        weights.append(np.full(len(disliked), max(1.0, len(background) / len(disliked) / 4)))
    x = np.vstack([liked, *negatives])
    y = np.concatenate([np.ones(len(liked)), np.zeros(len(x) - len(liked))])
    w = np.concatenate([np.full(len(liked), max(1.0, (len(x) - len(liked)) / len(liked))),
                        *weights])
    model = LinearSVC(C=c, loss="hinge", dual=True, max_iter=20_000, tol=1e-5, random_state=seed)
    model.fit(x, y, sample_weight=w)
    return _unit(model.coef_[0])


def background_rows(count: int, exclude: set[int], size: int = SVM_BACKGROUND,
                    seed: int = 0) -> np.ndarray:
    """A seeded random sample of index rows (sorted), none of them in `exclude`."""
    rng = np.random.default_rng(seed)
    size = min(size, max(0, count - len(exclude)))
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    picks = rng.choice(count, min(count, size + len(exclude)), replace=False)
    picks = np.array([r for r in picks if int(r) not in exclude][:size], dtype=np.int64)
    return np.sort(picks)
