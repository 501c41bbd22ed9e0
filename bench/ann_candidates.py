"""Which approximate index to serve at scale: candidates side by side on real questions.

On one index (the realistic 1M of bench/realistic.py, or the 80k real set), for each
candidate: build time, bytes per paper held in memory, the parameter the recall guard
chooses (its text probe of `indexer.ann`, 500 queries from words of the papers, at recall
>= ann.MIN_RECALL), then at that parameter recall@10 against exact search for real
questions (the hand-written paraphrases of bench/queries/paraphrase_80k.tsv and keyword
known-item queries) and single-query latency on pre-encoded queries (1 FAISS thread,
p50/p99). The baseline is exact search (IndexFlatIP) on the same vectors.

Candidates:
  ivf-fp16       IVF-Flat with float16 codes (IndexIVFScalarQuantizer QT_fp16)
  ivf-sq8+refine IVF with 8-bit codes, its best k*4 re-scored exactly on the stored vectors
  hnsw           HNSW over float32 (IndexHNSWFlat, M 32, efConstruction 40)
  ivf-pqMfs+refineR
                 IVF with M 4-bit product-quantiser codes scanned by SIMD lookups
                 (IndexIVFPQFastScan, no residuals: one lookup table per query), its best
                 k*R re-scored exactly on the stored vectors (e.g. ivf-pq96fs+refine16)
  Any IVF name may end in @NLIST for another number of cells (ivf-sq8+refine@16000).

Usage: python bench/ann_candidates.py --index /tmp/ix/real1m [--only ivf-fp16 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fusion import read_pairs  # noqa: E402
from query_types import known_item  # noqa: E402

from indexer import ann  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.store import open_index  # noqa: E402

K = 10
K_FACTOR = 4


class Refined:
    """An index's best k*K_FACTOR, re-scored exactly on the stored vectors (as the searcher
    does): the codes answer which papers, the stored vectors in what order."""

    def __init__(self, index, stored: np.ndarray, k_factor: int = K_FACTOR):
        self.index, self.stored, self.k_factor = index, stored, k_factor
        self.ntotal = index.ntotal

    def search(self, queries: np.ndarray, k: int):
        _, rows = self.index.search(queries, k * self.k_factor)
        out_d = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for q, found in enumerate(rows):
            found = found[found >= 0]
            scores = np.asarray(self.stored[np.sort(found)], np.float32) @ queries[q]
            order = np.argsort(-scores)[:k]
            out_d[q, :len(order)], out_i[q, :len(order)] = scores[order], np.sort(found)[order]
        return out_d, out_i


class Truth:
    """Exact search, each query set searched once (recall is measured many times)."""

    def __init__(self, exact):
        self.exact, self.ntotal, self.seen = exact, exact.ntotal, {}

    def search(self, queries: np.ndarray, k: int):
        key = (queries.__array_interface__["data"][0], queries.shape, k)
        if key not in self.seen:
            self.seen[key] = self.exact.search(queries, k)
        return self.seen[key]


def latency(index, queries: np.ndarray) -> dict:
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q.reshape(1, -1), K)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 2), "p99_ms": round(times[int(len(times) * 0.99)], 2)}


def calibrate(index, knob, values, exact, probe) -> tuple[int | None, float]:
    recall = 0.0
    for value in values:
        knob(value)
        recall = ann.recall_at_10(index, exact, probe)
        if recall >= ann.MIN_RECALL:
            return value, recall
    return None, recall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=["ivf-fp16", "ivf-sq8+refine", "hnsw"])
    args = parser.parse_args()
    handle = open_index(args.index)
    stored = handle.vectors  # memory-mapped, as served
    vectors = np.ascontiguousarray(stored, dtype=np.float32)
    n, dim = vectors.shape
    encoder = SentenceTransformerEncoder()
    paraphrase = [q for p, q in read_pairs(ROOT / "bench/queries/paraphrase_80k.tsv")
                  if handle.papers.row_of(p) is not None]
    sampled = list(handle.papers.papers(sorted(np.random.default_rng(7).choice(
        n, size=min(n, 20_000), replace=False).tolist())).values())
    real = {"paraphrase": paraphrase, "known-item": [q for _, q in known_item(sampled, 150)]}
    real_vectors = {name: np.ascontiguousarray(encoder.encode(texts), np.float32)
                    for name, texts in real.items()}
    for v in real_vectors.values():
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    rows = np.sort(np.random.default_rng(0).choice(n, size=500, replace=False))
    papers = handle.papers.papers(rows.tolist())
    probe = ann.text_probe([papers[int(r)].title for r in rows],
                           [papers[int(r)].abstract for r in rows], encoder.encode,
                           sample=500, seed=0)
    probe = ann.Probe(probe.vectors, rows[probe.rows], probe.kind)
    all_queries = np.concatenate(list(real_vectors.values()))
    faiss.omp_set_num_threads(2)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    exact = Truth(flat)
    faiss.omp_set_num_threads(1)
    report = {"index": str(args.index), "n": n, "queries": {k: len(v) for k, v in real.items()},
              "exact": {"bytes_per_paper": dim * 4, **latency(flat, all_queries[:100])}}
    print(json.dumps(report), flush=True)
    nlist = ann.nlist_for(n)
    train = vectors[np.random.default_rng(0).choice(n, size=min(n, nlist * 64), replace=False)]
    for name in args.only:
        faiss.omp_set_num_threads(2)  # builds keep all cores
        started = time.perf_counter()
        if name.startswith("ivf"):
            kind, _, cells = name.partition("@")
            cells = int(cells) if cells else nlist
            sample = (train if cells == nlist else vectors[np.random.default_rng(0).choice(
                n, size=min(n, cells * 64), replace=False)])
            if kind.startswith("ivf-pq"):
                m = int(kind.removeprefix("ivf-pq").split("fs")[0])
                factor = int(kind.split("+refine")[1])
                ivf = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, cells, m, 4,
                                               faiss.METRIC_INNER_PRODUCT)
                ivf.by_residual = False
                index = Refined(ivf, stored, factor)
            else:
                codes = (faiss.ScalarQuantizer.QT_fp16 if kind == "ivf-fp16"
                         else faiss.ScalarQuantizer.QT_8bit)
                ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, cells, codes,
                                                    faiss.METRIC_INNER_PRODUCT)
                index = None
            ivf.train(sample)
            ivf.add(vectors)
            if index is None:
                index = ivf if kind == "ivf-fp16" else Refined(ivf, stored)
            size = ivf.sa_code_size() + 8  # a code and an id per paper (+ the centroids)
            knob_name, values = "nprobe", [p for p in ann.NPROBES if p <= max(1, cells // 4)]

            def knob(value, ivf=ivf):
                ivf.nprobe = value
        else:
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.add(vectors)
            size = dim * 4 + 32 * 2 * 4 * 1.05  # vectors + level-0 links (and a few above)
            knob_name, values = "efSearch", [16, 32, 64, 128, 256, 512]

            def knob(value, index=index):
                index.hnsw.efSearch = value
        built = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        chosen, guard = calibrate(index, knob, values, exact, probe)
        row = {"candidate": name, "build_s": round(built, 1), "bytes_per_paper": round(size),
               knob_name: chosen, "guard_recall": round(guard, 4)}
        for value in values:
            knob(value)
            row[f"{knob_name}={value}"] = {
                "guard": round(ann.recall_at_10(index, exact, probe), 4),
                **{q: round(ann.recall_at_10(index, exact, v), 4) for q, v in real_vectors.items()},
                **latency(index, all_queries)}
        print(json.dumps(row), flush=True)
        del index


if __name__ == "__main__":
    main()
