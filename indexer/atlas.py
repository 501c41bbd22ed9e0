"""The map of an index: a 2-D layout of every paper and named topic clusters.

The layout is UMAP (umap-learn) on the first 50 principal components of the vectors, or
plain PCA for small corpora (UMAP needs neighbourhoods to be meaningful) and when UMAP
fails. Clusters are spherical k-means on the full vectors (FAISS), so they follow meaning,
not the 2-D picture. Each cluster is named by its most distinctive terms by class-based
TF-IDF: a term scores high when it is frequent in the cluster's titles and abstracts and
rare across the other clusters. Everything is seeded: the same vectors and texts give the
same map.

Stored in the generation's `map/` folder by `indexer.store.write_atlas`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

SEED = 42
PCA_BELOW = 500  # fewer papers than this: PCA layout, UMAP's neighbourhoods are too thin
UMAP_FIT_LIMIT = 200_000  # above this, UMAP is fitted on a sample and the rest transformed
LABEL_TERMS = 3
# Words every abstract uses: they say nothing about a cluster's topic.
_ACADEMIC = """
paper propose proposed proposes approach approaches method methods result results show shows
shown novel new based using use used study studies present presents presented work works
existing demonstrate demonstrates achieve achieves achieved performance state art framework
problem problems task tasks different provide provides paper's introduce introduces
significantly significant improve improves improved furthermore additionally however
experiments experimental extensive outperforms code available github com https http www
"""
ACADEMIC_STOP_WORDS = frozenset(_ACADEMIC.split())


@dataclass
class Atlas:
    """A map: `coords[row]` and `clusters[row]` for each paper row of the generation."""

    coords: np.ndarray  # (n, 2) float32
    clusters: np.ndarray  # (n,) int32, in 0 .. len(labels) - 1
    labels: list[str]  # one distinct, non-empty name per cluster
    terms: list[list[str]]  # each cluster's distinctive terms, best first
    info: dict = field(default_factory=dict)  # method, seed, timings

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.clusters, minlength=len(self.labels)).tolist()


def cluster_count(n: int) -> int:
    """About sqrt(n / 5) clusters, at least 2 and at most 48: readable on one map."""
    return max(2, min(48, round(math.sqrt(n / 5)))) if n >= 4 else 1


def clusters_of(vectors: np.ndarray, k: int, seed: int = SEED) -> np.ndarray:
    """Spherical k-means assignments (int32) of unit vectors; empty clusters are renumbered."""
    import faiss

    n = len(vectors)
    if k <= 1 or n <= k:
        return np.zeros(n, dtype=np.int32) if k <= 1 else np.arange(n, dtype=np.int32) % k
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=3, seed=seed, spherical=True,
                      min_points_per_centroid=1, max_points_per_centroid=2000, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    assign = assign[:, 0]
    # Renumber by size (largest cluster 0) so numbering is stable and without gaps.
    counts = np.bincount(assign, minlength=k)
    order = [c for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    remap = np.full(k, -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    return remap[assign]


def _pca(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = max(1, min(dims, x.shape[0], x.shape[1]))
    return PCA(n_components=dims, random_state=seed).fit_transform(x).astype(np.float32)


def layout(vectors: np.ndarray, seed: int = SEED, method: str = "auto") -> tuple[np.ndarray, str]:
    """(n, 2) float32 coordinates scaled into [-1, 1], and the method used ("umap" or "pca")."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32), "pca"
    if n < 3:
        coords = np.zeros((n, 2), np.float32)
        coords[:, 0] = np.linspace(-1, 1, n) if n > 1 else 0
        return coords, "pca"
    if method == "auto":
        method = "umap" if n >= PCA_BELOW else "pca"
    reduced = _pca(x, 50, seed)
    coords = None
    if method == "umap":
        try:
            coords = _umap(reduced, seed)
        except Exception as e:  # noqa: BLE001 - any UMAP failure falls back to PCA
            log.warning("UMAP failed (%s); using PCA for the map", e)
            method = "pca"
    if coords is None:
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.hstack(
            [reduced, np.zeros((n, 1), np.float32)])
    coords = np.asarray(coords, dtype=np.float32)
    coords -= coords.mean(axis=0)
    scale = float(np.abs(coords).max()) or 1.0
    return np.ascontiguousarray(coords / scale, dtype=np.float32), method


def _umap(reduced: np.ndarray, seed: int) -> np.ndarray:
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state"
        model = umap.UMAP(n_neighbors=15, min_dist=0.1, n_components=2, random_state=seed)
        if len(reduced) <= UMAP_FIT_LIMIT:
            return model.fit_transform(reduced)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(len(reduced), UMAP_FIT_LIMIT, replace=False))
        model.fit(reduced[sample])
        return model.transform(reduced)


_WORD = re.compile(r"[a-z][a-z0-9\-]*[a-z0-9]|[^\sa-z0-9\-]")
_LATEX = re.compile(r"\$[^$]*\$|\\[a-zA-Z]+")


def _analyse(text: str, stop: frozenset[str]) -> list[str]:
    """Words (3+ letters, no stop words, no LaTeX) and two-word phrases of words that are
    adjacent in the text: punctuation and stop words break a phrase, so "language models
    (LLMs)" never yields "models llms"."""
    out: list[str] = []
    prev = ""
    for tok in _WORD.findall(_LATEX.sub(" . ", text.lower())):
        if len(tok) < 3 or tok in stop or not tok[0].isalpha():
            prev = ""
            continue
        out.append(tok)
        if prev:
            out.append(f"{prev} {tok}")
        prev = tok
    return out


def label_clusters(texts: Sequence[str], clusters: np.ndarray, k: int,
                   top: int = 8) -> tuple[list[str], list[list[str]]]:
    """Each cluster's distinctive terms by class-based TF-IDF, and a distinct label from them.

    c-TF-IDF (as in BERTopic): a term's weight in a cluster is its frequency among the
    cluster's words times log(1 + A / f), A the average number of words per cluster and f
    the term's frequency over all clusters; times log(1 + k / c), c the number of clusters
    using it, so words every topic uses ("models") name none. A term must appear in at
    least 3% of the cluster's papers (and two), so one paper's jargon cannot name a topic.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    stop = frozenset(ENGLISH_STOP_WORDS | ACADEMIC_STOP_WORDS)
    terms: list[list[str]] = [[] for _ in range(k)]
    try:
        vectorizer = CountVectorizer(analyzer=lambda t: _analyse(t, stop),
                                     min_df=2 if len(texts) >= 50 else 1)
        per_doc = vectorizer.fit_transform(texts)
        vocab = vectorizer.get_feature_names_out()
    except ValueError:  # no usable words at all (empty abstracts)
        per_doc, vocab = None, []
    if per_doc is not None:
        member = sparse.csr_matrix((np.ones(len(texts)), (clusters, np.arange(len(texts)))),
                                   shape=(k, len(texts)))
        counts = (member @ per_doc).astype(np.float64).tocsr()
        docfreq = (member @ (per_doc > 0).astype(np.float64)).tocsr()
        sizes = np.bincount(clusters, minlength=k)
        words = np.asarray(counts.sum(axis=1)).ravel()
        freq = np.asarray(counts.sum(axis=0)).ravel()
        idf = np.log(1.0 + max(words.mean(), 1.0) / np.maximum(freq, 1.0))
        spread = np.log(1.0 + k / np.maximum(np.asarray((counts > 0).sum(axis=0)).ravel(), 1))
        weight = idf * spread
        for c in range(k):
            row, dfr = counts.getrow(c), docfreq.getrow(c).toarray().ravel()
            need = max(2.0, 0.03 * sizes[c]) if sizes[c] >= 4 else 1.0
            keep = dfr[row.indices] >= need
            idx, data = row.indices[keep], row.data[keep] / max(words[c], 1.0) * weight[row.indices[keep]]
            order = np.argsort(-data, kind="stable")[: top * 6]
            terms[c] = _distinct_terms([(str(vocab[idx[i]]), float(data[i])) for i in order], top)
    labels = _distinct_labels(terms)
    return labels, terms


def _stem(word: str) -> str:
    """A crude plural fold ("images" and "image", "networks" and "network") for comparing."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _distinct_terms(ranked: list[tuple[str, float]], top: int) -> list[str]:
    """Best terms without repeats: a phrase scoring at least half its best word replaces
    that word ("time series" over "time"); a word inside a chosen phrase is skipped; plural
    and singular count as one."""
    score = dict(ranked)
    phrases = [t for t, _ in ranked if " " in t]
    chosen: list[str] = []
    for term, value in ranked:
        if " " not in term:
            better = [p for p in phrases if term in p.split() and score[p] >= 0.5 * value]
            term = better[0] if better else term
        words = {_stem(w) for w in term.split()}
        if term in chosen or any(
                words <= {_stem(w) for w in c.split()} or {_stem(w) for w in c.split()} <= words
                for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) == top:
            break
    return chosen


def _distinct_labels(terms: list[list[str]]) -> list[str]:
    """"term, term, term" per cluster; a label equal to an earlier one takes more terms."""
    labels: list[str] = []
    seen: set[str] = set()
    for c, ts in enumerate(terms):
        take = min(LABEL_TERMS, len(ts))
        label = ", ".join(ts[:take]) or f"cluster {c + 1}"
        while label in seen and take < len(ts):
            take += 1
            label = ", ".join(ts[:take])
        if label in seen:
            label = f"{label} ({c + 1})"
        seen.add(label)
        labels.append(label)
    return labels


def compute(vectors: np.ndarray, texts: Sequence[str], *, seed: int = SEED,
            method: str = "auto", k: int | None = None,
            on_step: Callable[[str], None] | None = None) -> Atlas:
    """The map of `vectors` (row-aligned with `texts`: title and abstract of each paper)."""
    if len(vectors) != len(texts):
        raise ValueError(f"{len(vectors)} vectors but {len(texts)} texts")
    step = on_step or (lambda _: None)
    timings = {}
    started = time.perf_counter()
    asked_k = k
    k = k or cluster_count(len(vectors))
    step(f"clustering {len(vectors):,} papers into {k} topics")
    clusters = clusters_of(vectors, k, seed)
    k = int(clusters.max()) + 1 if len(clusters) else 0
    timings["cluster_s"] = round(time.perf_counter() - started, 2)
    t = time.perf_counter()
    step("naming the clusters")
    labels, terms = label_clusters(texts, clusters, k)
    timings["label_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    step("laying out the map")
    coords, used = layout(vectors, seed, method)
    timings["layout_s"] = round(time.perf_counter() - t, 2)
    info = {"method": used, "seed": seed, "clusters": k, "count": len(vectors),
            "asked": {"clusters": asked_k, "method": method}, **timings,
            "seconds": round(time.perf_counter() - started, 2)}
    return Atlas(coords, clusters, labels, terms, info)


def map_index(root, *, seed: int = SEED, method: str = "auto", k: int | None = None,
              on_step: Callable[[str], None] | None = None) -> tuple[object, Atlas]:
    """Compute the map of the index at `root` and serve it in a new generation (the other
    files hard-linked from the served one, which is verified first and never changed)."""
    from pathlib import Path

    from indexer.errors import IndexNotFound
    from indexer.store import check_folder, derive_generation, open_index, writer_lock

    root = Path(root)
    check_folder(root)
    if not root.is_dir():
        raise IndexNotFound(f"no index at {root}")
    with writer_lock(root):
        handle = open_index(root, verify=True)
        try:
            atlas = compute(handle.vectors, [p.text for p in handle.papers.all_papers()],
                            seed=seed, method=method, k=k, on_step=on_step)
            gen = derive_generation(root, handle, atlas)
        finally:
            handle.close()
    return gen, atlas


def options(manifest: dict | None, gen=None) -> dict:
    """The map options a generation's map was asked with (seed, method, k), so updates
    and rebuilds keep the user's choice; {} when it has no map."""
    entry = (manifest or {}).get("map")
    if entry is None and gen is not None:  # a generation written before the manifest said
        try:
            import json

            info = json.loads((gen / "map" / "atlas.json").read_text()).get("info", {})
        except (OSError, ValueError, AttributeError):
            return {}
        return {"seed": int(info.get("seed", SEED))}
    if not entry:
        return {}
    found = {"seed": int(entry.get("seed") or SEED), "method": entry.get("method") or "auto"}
    if entry.get("clusters"):
        found["k"] = int(entry["clusters"])
    return found


def map_generation(gen, vectors: np.ndarray, papers: Sequence, *, seed: int = SEED,
                   method: str = "auto", k: int | None = None,
                   on_step: Callable[[str], None] | None = None) -> Atlas:
    """Compute the map of a generation's papers (row-aligned with `vectors`) and store it
    there; builds and updates call this before the generation is served."""
    from indexer.store import write_atlas

    atlas = compute(vectors, [p.text for p in papers], seed=seed, method=method, k=k,
                    on_step=on_step)
    write_atlas(gen, atlas)
    return atlas
