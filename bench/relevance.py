"""Relevance on BEIR SciFact: dense, BM25, fusions and second stages, tuned on train only.

The default fusion (per-query convex weight) is measured by bench/fusion.py, which reports
SciFact beside the arXiv query sets; this script keeps BM25 settings, the older min-max
blend, PRF and second-stage experiments. Every knob is chosen on SciFact *train* queries
(qrels/train.tsv) and then reported once on *test*. Scores are computed in bulk with
numpy over the stored vectors and BM25 arrays of a real papersift index of the corpus
(built once, cached), so the numbers are what the Searcher computes, without per-query
process overhead.

Usage: python bench/relevance.py [--beir ../shared/data/scifact] [--tune] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import lexical  # noqa: E402
from indexer.build import build_index  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.store import open_index  # noqa: E402
from search.evaluate import read_qrels, read_queries, score_run  # noqa: E402
from search.hybrid import Fusion, fuse, top_rows  # noqa: E402


def load_index(beir: Path, cache: Path):
    encoder = SentenceTransformerEncoder(precision="auto")
    if not (cache / "CURRENT").exists():
        started = time.perf_counter()
        build_index([beir / "corpus.jsonl"], cache, encoder)
        print(f"built the SciFact index in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return open_index(cache), SentenceTransformerEncoder(precision="float32")


class Bench:
    def __init__(self, beir: Path, cache: Path):
        self.handle, self.encoder = load_index(beir, cache)
        self.papers = self.handle.papers.all_papers()
        self.ids = [p.id for p in self.papers]
        self.vectors = np.asarray(self.handle.vectors)
        self.queries = read_queries(beir / "queries.jsonl")
        self.qrels = {s: read_qrels(beir / "qrels" / f"{s}.tsv") for s in ("train", "test")}
        self._qvec: dict[str, np.ndarray] = {}
        self._bm25: dict[tuple, dict[str, np.ndarray]] = {}

    def qids(self, split):
        return [q for q in self.qrels[split] if q in self.queries]

    def dense(self, split) -> dict[str, np.ndarray]:
        missing = [q for q in self.qids(split) if q not in self._qvec]
        if missing:
            vecs = self.encoder.encode([self.queries[q] for q in missing])
            self._qvec.update(zip(missing, vecs, strict=True))
        return {q: self.vectors @ self._qvec[q] for q in self.qids(split)}

    def bm25(self, split, **settings) -> dict[str, np.ndarray]:
        key = tuple(sorted(settings.items()))
        if key not in self._bm25:
            retriever = (lexical.build([p.title for p in self.papers],
                                       [p.abstract for p in self.papers], settings)
                         if settings else self.handle.lexical)
            self._bm25[key] = {"retriever": retriever}
        cache = self._bm25[key]
        for q in self.qids(split):
            if q not in cache:
                cache[q] = lexical.scores(cache["retriever"], self.queries[q])
        return {q: cache[q] for q in self.qids(split)}

    def score(self, split, ranking) -> dict[str, float]:
        run = {q: [self.ids[r] for r in rows[:100]] for q, rows in ranking.items()}
        return score_run(run, {q: self.qrels[split][q] for q in self.qids(split)})


def rank_single(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {q: top_rows(s, 100) if s.max() > 0 else np.argsort(-s)[:100]
            for q, s in scores.items()}


def rank_fused(dense, bm25, fusion: Fusion) -> dict[str, np.ndarray]:
    out = {}
    for q in dense:
        d_rows = np.argsort(-dense[q])[: fusion.pool]
        b_rows = top_rows(bm25[q], fusion.pool)
        union = np.union1d(d_rows, b_rows)
        rows, _ = fuse(d_rows, dense[q][union], b_rows, bm25[q][union], fusion)
        rest = np.setdiff1d(np.argsort(-dense[q])[:100], rows, assume_unique=False)
        out[q] = np.concatenate([rows, rest])[:100]
    return out


def rank_prf(b: Bench, split, bm25, fusion: Fusion, beta: float, m: int = 3):
    """Query-side pseudo-relevance feedback: move the dense query toward the mean of the
    first fused ranking's top `m` documents, then fuse again."""
    first = rank_fused(b.dense(split), bm25, fusion)
    dense2 = {}
    for q, rows in first.items():
        v = b._qvec[q] + beta * b.vectors[rows[:m]].mean(axis=0)
        dense2[q] = b.vectors @ (v / np.linalg.norm(v))
    return rank_fused(dense2, bm25, fusion)


class SecondStage:
    """A larger model re-scoring the top `depth` of the hybrid ranking."""

    def __init__(self, b: Bench, model_path: Path, cache: Path):
        self.b = b
        self.encoder = SentenceTransformerEncoder(str(model_path), precision="auto")
        path = cache / "second-stage-docs.npy"
        if path.exists():
            self.docs = np.load(path, allow_pickle=False)
        else:
            started = time.perf_counter()
            self.docs = self.encoder.encode([p.text for p in b.papers])
            np.save(path, self.docs, allow_pickle=False)
            print(f"encoded the corpus with the second stage in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        self.qvec: dict[str, np.ndarray] = {}

    def rescore(self, split, first: dict[str, np.ndarray], gamma: float, depth: int = 50):
        missing = [q for q in first if q not in self.qvec]
        if missing:
            self.qvec.update(zip(missing, self.encoder.encode(
                [self.b.queries[q] for q in missing]), strict=True))
        out = {}
        for q, rows in first.items():
            head = rows[:depth]
            base = np.linspace(1.0, 0.0, len(head))  # the first stage's order, as a score
            big = self.docs[head] @ self.qvec[q]
            big = (big - big.min()) / (big.max() - big.min() + 1e-9)
            order = np.argsort(-((1 - gamma) * base + gamma * big), kind="stable")
            out[q] = np.concatenate([head[order], rows[depth:]])
        return out


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| method | nDCG@10 | Recall@10 | Recall@100 | MRR@10 |", "|---|---|---|---|---|"]
    for name, m in rows:
        lines.append(f"| {name} | {m['ndcg@10']:.3f} | {m['recall@10']:.3f} | "
                     f"{m['recall@100']:.3f} | {m['mrr@10']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/papersift-scifact-index"))
    parser.add_argument("--tune", action="store_true", help="print the train-split grids")
    parser.add_argument("--second-stage", type=Path, help="a larger sentence-transformers model")
    args = parser.parse_args()
    b = Bench(args.beir, args.cache)
    if args.second_stage:
        stage = SecondStage(b, args.second_stage, args.cache)
        first = {s: rank_fused(b.dense(s), b.bm25(s), Fusion("minmax")) for s in ("train", "test")}
        best = max((b.score("train", stage.rescore("train", first["train"], g))["ndcg@10"], g)
                   for g in (0.25, 0.5, 0.75, 1.0))
        print(f"second stage: train nDCG@10 {best[0]:.4f} at gamma={best[1]}")
        started = time.perf_counter()
        m = b.score("test", stage.rescore("test", first["test"], best[1]))
        per_query = (time.perf_counter() - started) / len(first["test"]) * 1000
        print(table([(f"hybrid + {args.second_stage.name} top-50 (gamma={best[1]})", m)]))
        print(f"re-scoring cost with precomputed document vectors: {per_query:.1f} ms/query")
        return

    if args.tune:
        for tw in (1, 2, 3):
            for k1, bb in ((0.9, 0.4), (1.2, 0.75), (1.5, 0.75)):
                m = b.score("train", rank_single(b.bm25("train", title_weight=tw, k1=k1, b=bb)))
                print(f"train bm25 title_weight={tw} k1={k1} b={bb}: nDCG@10 {m['ndcg@10']:.4f}")
        dense, bm25 = b.dense("train"), b.bm25("train")
        print(f"train dense: {b.score('train', rank_single(dense))['ndcg@10']:.4f}")
        for w in np.arange(0.2, 0.85, 0.05):
            f = Fusion(method="minmax", dense_weight=round(float(w), 2))
            print(f"train blend w={f.dense_weight}: "
                  f"{b.score('train', rank_fused(dense, bm25, f))['ndcg@10']:.4f}")
        print(f"train rrf: {b.score('train', rank_fused(dense, bm25, Fusion('rrf')))['ndcg@10']:.4f}")
        for tw in (1, 3):
            bm = b.bm25("train", title_weight=tw, k1=1.2, b=0.75)
            for w in (0.45, 0.5, 0.55):
                m = b.score("train", rank_fused(dense, bm, Fusion("minmax", dense_weight=w)))
                print(f"train blend title_weight={tw} w={w}: {m['ndcg@10']:.4f}")
        for beta in (0.25, 0.5, 1.0):
            for m_docs in (3, 5):
                m = b.score("train", rank_prf(b, "train", bm25, Fusion("minmax"), beta, m_docs))
                print(f"train hybrid + dense PRF beta={beta} m={m_docs}: {m['ndcg@10']:.4f}")
        return

    dense, bm25 = b.dense("test"), b.bm25("test")
    rows = [("dense (all-MiniLM-L6-v2)", b.score("test", rank_single(dense))),
            ("bm25", b.score("test", rank_single(bm25))),
            ("rrf (dense + bm25)", b.score("test", rank_fused(dense, bm25, Fusion("rrf")))),
            ("min-max blend, dense weight 0.5 (the default before issue 11)",
             b.score("test", rank_fused(dense, bm25, Fusion("minmax"))))]
    print(table(rows))


if __name__ == "__main__":
    main()
