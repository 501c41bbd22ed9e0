"""Related work ("similar"): the seed's vector, its distinctive terms, and the two fused.

Judgments:
  scifact   BEIR SciFact documents cited by the same claim are related: every document of
            a set of 2+ is a seed, the others of its sets are relevant (gain 1). Sets from
            the train qrels choose the weights; sets from the test qrels are held out.
  arxiv     --judgments FILE over --arxiv-index: seed_id<TAB>paper_id<TAB>gain (0-2),
            judged by hand for "same problem" (bench/queries/related_80k.tsv).

Methods, each computed as `Searcher.similar` computes it: dense (the seed's stored vector),
bm25 (the seed's SEED_TERMS most distinctive terms as a BM25 query, over the ceiling),
fused (convex combination at a dense weight), and a plain TF-IDF cosine neighbour list
(scikit-learn, title + abstract) as the baseline. nDCG@10 and Recall@10.

Usage: python bench/related.py --index SCIFACT_INDEX [--arxiv-index DIR --judgments FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import lexical  # noqa: E402
from indexer.store import open_index  # noqa: E402
from search.evaluate import ndcg_at, read_qrels, recall_at  # noqa: E402
from search.hybrid import Fusion, fuse, top_rows  # noqa: E402
from search.searcher import SEED_TERMS  # noqa: E402

WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def scifact_judgments(beir: Path, split: str) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = {}
    for docs in read_qrels(beir / "qrels" / f"{split}.tsv").values():
        members = sorted(docs)
        if len(members) < 2:
            continue
        for seed in members:
            for other in members:
                if other != seed:
                    judged.setdefault(seed, {})[other] = 1
    return judged


def file_judgments(path: Path) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            seed, pid, gain = line.split("\t")
            judged.setdefault(seed, {})[pid] = int(gain)
    return judged


class Related:
    def __init__(self, index: Path):
        self.handle = open_index(index)
        self.papers = self.handle.papers.all_papers()
        self.ids = [p.id for p in self.papers]
        self.row_of = {p: i for i, p in enumerate(self.ids)}
        self.vectors = np.asarray(self.handle.vectors, dtype=np.float32)
        self.retriever = self.handle.lexical
        self._tfidf = None

    def tfidf(self, row: int) -> np.ndarray:
        if self._tfidf is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            texts = [f"{p.title} {p.abstract}" for p in self.papers]
            self._tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english",
                                          min_df=2).fit_transform(texts)
        sims = (self._tfidf @ self._tfidf[row].T).toarray().ravel()
        sims[row] = -1
        return np.argsort(-sims, kind="stable")[:10]

    def candidates(self, row: int, n_terms: int = SEED_TERMS):
        dense_all = self.vectors @ self.vectors[row]
        dense_all[row] = -np.inf
        d_rows = np.argpartition(-dense_all, 100)[:100]
        d_rows = d_rows[np.argsort(-dense_all[d_rows], kind="stable")]
        terms = lexical.seed_terms(self.retriever, [self.papers[row]], n_terms)
        raw = lexical.scores(self.retriever, terms)
        ceiling = lexical.ceiling(self.retriever, terms)
        bnorm = raw / ceiling if ceiling > 0 else raw
        bnorm[row] = 0.0
        b_rows = top_rows(bnorm, 100)
        union = np.union1d(d_rows, b_rows)
        return d_rows, b_rows, union, dense_all[union], bnorm[union]

    def rank(self, row: int, method: str, weight: float = 0.5, n_terms: int = SEED_TERMS):
        if method == "tfidf":
            return self.tfidf(row)
        d_rows, b_rows, union, dense, bm25 = self.candidates(row, n_terms)
        if method == "dense":
            return d_rows[:10]
        if method == "bm25":
            return b_rows[:10]
        rows, _ = fuse(d_rows, dense, b_rows, bm25, Fusion("convex"), weight)
        return rows[:10]

    def score(self, judged: dict[str, dict[str, int]], method: str, **kw) -> tuple[float, float, int]:
        ndcg = rec = 0.0
        n = 0
        for seed, rel in judged.items():
            if seed not in self.row_of:
                continue
            ranked = [self.ids[r] for r in self.rank(self.row_of[seed], method, **kw)]
            rel = {d: g for d, g in rel.items() if d in self.row_of}
            if not any(g > 0 for g in rel.values()):
                continue
            ndcg += ndcg_at(ranked, rel)
            rec += recall_at(ranked, rel, 10)
            n += 1
        return ndcg / n, rec / n, n


def report(name: str, r: Related, judged, weights=WEIGHTS) -> None:
    print(f"\n{name}:\n| method | seeds | nDCG@10 | Recall@10 |\n|---|---|---|---|")
    for method, kw in [("tfidf", {}), ("dense", {}), ("bm25", {})] + [
            ("fused", {"weight": w}) for w in weights]:
        ndcg, rec, n = r.score(judged, method, **kw)
        label = method + (f" w={kw['weight']}" if kw else "")
        print(f"| {label} | {n} | {ndcg:.3f} | {rec:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="an index of SciFact's corpus")
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--arxiv-index", type=Path)
    parser.add_argument("--judgments", type=Path, default=ROOT / "bench/queries/related_80k.tsv")
    parser.add_argument("--terms", action="store_true", help="also compare SEED_TERMS values")
    args = parser.parse_args()
    sci = Related(args.index)
    report("SciFact co-cited, train sets (choose)", sci, scifact_judgments(args.beir, "train"))
    report("SciFact co-cited, test sets (held out)", sci, scifact_judgments(args.beir, "test"))
    if args.terms:
        for n in (16, 32, 64):
            ndcg, _, _ = sci.score(scifact_judgments(args.beir, "train"), "fused", n_terms=n)
            print(f"train, SEED_TERMS={n}: nDCG@10 {ndcg:.3f}")
    if args.arxiv_index and args.judgments.exists():
        report("arXiv 80k, judged by hand", Related(args.arxiv_index),
               file_judgments(args.judgments))


if __name__ == "__main__":
    main()
