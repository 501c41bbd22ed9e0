"""Choosing and building the FAISS index: exact below a size, IVF above, recall-guarded.

Exact inner-product search scans every vector per query (memory-bandwidth bound: about
10 ms at 80k and 100 ms at 1M vectors of dimension 384 on the 2-core machine of
docs/benchmarks.md). Above `EXACT_LIMIT` an IVF index with 8-bit codes is built, whose
best k * REFINE the searcher re-scores on the stored vectors; the build then measures
recall@10 against exact search for guard queries, raises nprobe until recall reaches
`MIN_RECALL`, and falls back to exact search when no nprobe does. Updates add to a trained
IVF index without retraining until the corpus has doubled since training (or recall falls
below the bar).

The guard's queries (`Probe`) are, when the model that made the vectors is at hand, a few
words of the papers' titles and abstracts encoded as queries (`text_probe`): short texts
in the query distribution, each scored without the paper it came from. Without a model
(vectors imported with `--vectors`) they are corpus vectors moved by noise (`noise_probe`);
the manifest says which (`recall_guard`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

EXACT_LIMIT = 200_000
MIN_RECALL = 0.98
# Noisy corpus vectors overstate what real questions get (docs/benchmarks.md, "Real
# questions at 1M": 0.997 where questions got 0.992 and keyword queries 0.983 at 80k), so
# without words of the papers the guard asks more of them.
MIN_RECALL_NOISE = 0.995
# An update keeps a trained index while its recall stays within this of the bar: 500 guard
# queries measure recall to about +-0.005, and a one-paper update must not retrain.
UPDATE_SLACK = 0.01
NPROBES = (4, 8, 16, 32, 64, 128, 256, 512)
INDEX_TYPES = ("auto", "flat", "ivf")
# An update adds to the trained IVF index until the corpus has doubled since training.
RETRAIN_GROWTH = 2.0
QUERY_COSINE = 0.55  # how far the recall guard's queries sit from corpus vectors


def nlist_for(n: int) -> int:
    """Coarse cells: about 4*sqrt(n), at least 1, with ≥ 39 training points per cell."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


@dataclass(frozen=True)
class Probe:
    """The recall guard's queries: unit vectors, the row each was made from (-1: none; a
    query's own paper is left out of its truth and its answer), and how they were made."""

    vectors: np.ndarray
    rows: np.ndarray
    kind: str
    noisy: bool = False  # corpus vectors moved by noise: held to MIN_RECALL_NOISE

    def describe(self) -> dict[str, Any]:
        return {"queries": self.kind, "sample": len(self.rows)}

    @property
    def bar(self) -> float:
        """The recall@10 these queries must reach."""
        return MIN_RECALL_NOISE if self.noisy else MIN_RECALL


_WORD = re.compile(r"[^\W\d_][\w-]*")  # a word starting with a letter, in any script
# How many words a probe takes, and the shortest word it takes, from each half.
TITLE_WORDS, TITLE_MIN = 3, 4
ABSTRACT_WORDS, ABSTRACT_MIN = 8, 4


def some_words(text: str, k: int, shortest: int, rng: np.random.Generator) -> str:
    """`k` words of at least `shortest` characters from `text`, in their order."""
    found = [w for w in _WORD.findall(text) if len(w) >= shortest]
    if len(found) > k:
        found = [found[i] for i in sorted(rng.choice(len(found), k, replace=False))]
    return " ".join(found)


def text_probe(titles: Sequence[str], abstracts: Sequence[str],
               encode: Callable[[list[str]], np.ndarray | None], sample: int = 500,
               seed: int = 0) -> Probe | None:
    """Guard queries made of the papers' own words, as a researcher types them: for a
    sample of papers, 3 words of the title (even positions) or 8 words of the abstract
    (odd), encoded as queries, each scored without its own paper.

    Whole titles and first sentences sit closer to the corpus than real questions do and
    overstate recall; noise-moved vectors did too. At 80k with a forced IVF1131 these short
    probes stayed within 0.02 of the hand-written plain-language questions and of keyword
    queries at every nprobe, on the low side (docs/benchmarks.md, "Recall guard")."""
    n = len(titles)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    kept, texts = [], []
    for i, r in enumerate(rows):
        title = some_words(titles[r], TITLE_WORDS, TITLE_MIN, rng)
        abstract = some_words(abstracts[r], ABSTRACT_WORDS, ABSTRACT_MIN, rng)
        text = (title or abstract) if i % 2 == 0 else (abstract or title)
        if text:  # a paper with no word of 4 letters (or a short title in Chinese) is left out
            kept.append(r)
            texts.append(text)
    if not texts:
        return None
    rows = np.asarray(kept, dtype=np.int64)
    encoded = encode(texts)
    if encoded is None:  # no model at hand after all
        return None
    vectors = np.array(encoded, dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return Probe(np.ascontiguousarray(vectors), rows, "words of titles and abstracts")


def noise_probe(vectors: np.ndarray, sample: int = 500, seed: int = 0) -> Probe:
    """Guard queries without a model: corpus vectors moved by noise (`guard_queries`)."""
    queries = guard_queries(vectors, sample, np.random.default_rng(seed))
    return Probe(queries, np.full(len(queries), -1, dtype=np.int64), "noisy corpus vectors",
                 noisy=True)


def guard_queries(vectors: np.ndarray, sample: int, rng: np.random.Generator) -> np.ndarray:
    """Query-like unit vectors: sampled corpus vectors moved to cosine about `QUERY_COSINE`
    from where they were.

    A corpus vector used as its own query finds its own dense neighbourhood and flatters
    an IVF index even more. Noise to cosine 0.55 tracked a mix of titles and paraphrases at
    80k, but overstates what hand-written questions get (0.927 against 0.875 at nprobe 32,
    IVF1131): the fallback for vectors without their model (docs/benchmarks.md).
    """
    n, dim = vectors.shape
    picked = np.asarray(vectors[rng.choice(n, size=min(n, sample), replace=False)], np.float32)
    sigma = math.sqrt((1 / QUERY_COSINE**2 - 1) / dim)
    queries = picked + sigma * rng.standard_normal(picked.shape).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def recall_at_10(index, exact, probe: Probe | np.ndarray) -> float:
    """Share of the exact top 10 that `index` finds, each query's own paper left out."""
    if not isinstance(probe, Probe):
        probe = Probe(np.asarray(probe, np.float32), np.full(len(probe), -1), "vectors")
    held_out = bool((probe.rows >= 0).any())
    k = min(10, exact.ntotal - held_out)
    if k < 1:
        return 1.0
    _, truth = exact.search(probe.vectors, k + held_out)
    _, found = index.search(probe.vectors, k + held_out)
    hits = 0
    for t, f, own in zip(truth, found, probe.rows, strict=True):
        t = [r for r in t if r != own][:k]
        f = [r for r in f if r != own and r >= 0][:k]
        hits += len(set(t) & set(f))
    return hits / (len(probe.rows) * k)


def _probe(vectors: np.ndarray, probe: Callable[[], Probe | None] | None, sample: int,
           seed: int) -> Probe:
    made = probe() if probe is not None else None
    if made is not None:
        return made
    log.warning("recall guard: no model here to encode words of the papers; measuring with "
                "noisy corpus vectors (bar %.3f: they overstate recall for real questions)",
                MIN_RECALL_NOISE)
    return noise_probe(vectors, sample, seed)


REFINE = 4  # an approximate index proposes k * REFINE papers; the stored vectors rank them


def rescore(stored: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of `query` with the stored vectors of `rows` (float32 sums)."""
    return np.asarray(stored[rows], dtype=np.float32) @ np.asarray(query, dtype=np.float32)


class Refined:
    """An index whose best k * `factor` are re-scored on the stored vectors and the best k
    of those kept (ties to the lower row): what the searcher does for a generation whose
    manifest has `refine`, so the recall guard measures what users get."""

    def __init__(self, index, stored: np.ndarray, factor: int = REFINE) -> None:
        self.index, self.stored, self.factor = index, stored, factor
        self.ntotal = index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, proposed = self.index.search(queries, k * self.factor)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for q, found in enumerate(proposed):
            found = found[found >= 0].astype(np.int64)
            found_scores = rescore(self.stored, found, queries[q])
            best = np.lexsort((found, -found_scores))[:k]
            scores[q, :len(best)], rows[q, :len(best)] = found_scores[best], found[best]
        return scores, rows


def _flat(vectors: np.ndarray, float16: bool, exact) -> tuple[Any, dict[str, Any]]:
    if not float16:
        return exact, {"type": "IndexFlatIP", "factory": "Flat", "metric": "inner_product",
                       "exact": True}
    flat16 = faiss.IndexScalarQuantizer(vectors.shape[1], faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)
    flat16.add(vectors)
    return flat16, {"type": "IndexScalarQuantizer", "factory": "SQfp16",
                    "metric": "inner_product", "exact": True, "codes": "float16"}


def build(vectors: np.ndarray, index_type: str = "auto", seed: int = 0,
          sample: int = 500, float16: bool = False,
          probe: Callable[[], Probe | None] | None = None,
          stored: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """A FAISS index over `vectors` (row i has id i) and its manifest description.

    Exact: IndexFlatIP, or with `float16` 2-byte codes (FAISS scalar quantiser QT_fp16:
    half the memory, inner products within about 1e-3 of float32). Approximate: IVF with
    8-bit codes (a byte per dimension, a quarter of float32) whose best k * REFINE the
    searcher re-scores on the stored vectors (manifest `refine`): on the realistic 1M set
    it found the same papers for real questions as IVF with float16 codes at the same
    nprobe and speed, in half the memory (docs/benchmarks.md, "Real questions at 1M").
    `probe` makes the recall guard's queries (`text_probe`), called only when an
    approximate index is tried; without one, or when it returns None, the guard uses
    `noise_probe`. `stored`: the vectors as the generation stores them, if already made.
    """
    n, dim = vectors.shape
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    if index_type == "flat" or (index_type == "auto" and n < EXACT_LIMIT) or n < 2:
        return _flat(vectors, float16, exact)
    nlist = nlist_for(n)
    rng = np.random.default_rng(seed)
    train = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist,
                                        faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    ivf.train(train)
    ivf.add(vectors)
    refined = Refined(ivf, _stored(vectors, float16, stored))
    queries = _probe(vectors, probe, sample, seed)
    recall = 0.0
    # Probing more than a quarter of the cells costs about as much as exact search.
    for nprobe in [p for p in NPROBES if p <= max(1, nlist // 4)]:
        ivf.nprobe = nprobe
        recall = recall_at_10(refined, exact, queries)
        if recall >= queries.bar:
            return ivf, {"type": "IndexIVFScalarQuantizer", "factory": f"IVF{nlist},SQ8",
                         "codes": "int8", "refine": REFINE, "metric": "inner_product",
                         "exact": False, "nlist": nlist, "nprobe": ivf.nprobe,
                         "recall_at_10": round(recall, 4), "recall_guard": queries.describe(),
                         "trained_on": n}
    log.warning("IVF recall@10 %.3f < %.3f even at nprobe %d: using exact search",
                recall, queries.bar, ivf.nprobe)
    del ivf, refined
    index, info = _flat(vectors, float16, exact)
    return index, {**info, "fallback_from": f"IVF{nlist}", "ivf_recall_at_10": round(recall, 4),
                   "recall_guard": queries.describe()}


def configure(index, info: dict[str, Any]) -> None:
    """Apply search-time parameters recorded in the manifest to a loaded index."""
    if "nprobe" in info:
        faiss.extract_index_ivf(index).nprobe = int(info["nprobe"])


def extend(old, info: dict[str, Any], vectors: np.ndarray, changed: np.ndarray, old_count: int,
           sample: int = 500, seed: int = 0, probe: Callable[[], Probe | None] | None = None,
           float16: bool = False, stored: np.ndarray | None = None
           ) -> tuple[Any, dict[str, Any]] | None:
    """Reuse a trained IVF index for an update: re-add changed rows, add new rows, and probe
    more cells if the guard's queries now need it.

    Returns None when the index should be rebuilt instead: it is exact (cheap to rebuild),
    the corpus has more than doubled since the coarse quantiser was trained, or on a fresh
    sample the recorded nprobe falls more than UPDATE_SLACK below the bar and no larger
    nprobe up to a quarter of the cells reaches it.
    """
    if info.get("exact", True) or len(vectors) > RETRAIN_GROWTH * int(info["trained_on"]):
        return None
    # A private copy with its own memory: the served index is memory-mapped read-only
    # (indexer/store.py), and a clone would still write into the mapped lists.
    index = faiss.deserialize_index(faiss.serialize_index(old))
    ivf = faiss.extract_index_ivf(index)
    if len(changed):
        index.remove_ids(np.asarray(changed, dtype=np.int64))
        index.add_with_ids(vectors[changed], np.asarray(changed, dtype=np.int64))
    if len(vectors) > old_count:
        index.add_with_ids(vectors[old_count:], np.arange(old_count, len(vectors), dtype=np.int64))
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    queries = _probe(vectors, probe, sample, seed)
    factor = int(info.get("refine", 1))
    searched = Refined(index, _stored(vectors, float16, stored), factor) if factor > 1 else index
    recall = 0.0
    for nprobe in [int(info["nprobe"])] + [p for p in NPROBES if int(info["nprobe"]) < p
                                            <= max(1, ivf.nlist // 4)]:
        ivf.nprobe = nprobe
        recall = recall_at_10(searched, exact, queries)
        if recall >= queries.bar - (UPDATE_SLACK if nprobe == int(info["nprobe"]) else 0):
            return index, {**info, "nprobe": nprobe, "recall_at_10": round(recall, 4),
                           "recall_guard": queries.describe(),
                           "added_since_training": len(vectors) - int(info["trained_on"])}
    return None


def _stored(vectors: np.ndarray, float16: bool, stored: np.ndarray | None = None) -> np.ndarray:
    """The vectors as the generation stores them (and the searcher re-scores on them)."""
    if stored is not None:
        return stored
    return vectors.astype(np.float16) if float16 else vectors
