"""Fusion per query type: fit the adaptive dense weight on training queries, report held-out sets.

Query sets, each split into a training part and a held-out part that the fit never sees:
  paraphrase  plain-language questions written by hand for papers of the 80k set, sharing
              no content word with the title (bench/queries/paraphrase_80k.tsv and the older
              paraphrase.tsv); split by a hash of the paper id;
  known-item  a paper's coined name plus two title words (bench/query_types.py); training
              queries from seed 101, held-out from seed 3 (the set docs/benchmarks.md used);
  scifact     BEIR SciFact, train and test qrels (its own index, as bench/relevance.py).

Every query's candidates are made as the Searcher makes them (dense top pool by exact
inner product, BM25 top pool, the union scored on both sides, `search.hybrid` features and
fusion), so the figures are the product's ranking.

Usage:
  python bench/fusion.py --index <80k index> [--fit] [--scifact-cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_types import known_item  # noqa: E402

from indexer import lexical, windows  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.store import open_index  # noqa: E402
from search import hybrid  # noqa: E402
from search.evaluate import mrr_at, ndcg_at, read_qrels, read_queries, recall_at  # noqa: E402
from search.hybrid import Fusion  # noqa: E402

POOL = 100
GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)


@dataclass
class Query:
    text: str
    gains: dict[int, int]          # row -> graded relevance
    union: np.ndarray              # candidate rows (sorted)
    d_rows: np.ndarray             # dense top POOL, best first
    b_rows: np.ndarray             # BM25 top POOL, best first
    dense: np.ndarray              # cosine of each union row
    bm25: np.ndarray               # BM25 / ceiling of each union row
    bm25_raw: np.ndarray
    features: np.ndarray
    rest: np.ndarray               # dense top 100 (to fill a ranking to depth 100)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


def is_train(paper_id: str) -> bool:
    return int(hashlib.sha256(paper_id.encode()).hexdigest(), 16) % 2 == 0


class Corpus:
    """An opened index with every query's candidates computed once."""

    def __init__(self, index: Path, encoder, windows_dir: Path | None = None):
        self.handle = open_index(index)
        self.windows = None
        if windows_dir is not None:
            owners = np.load(windows_dir / "owners.npy", allow_pickle=False)
            self.windows = (np.load(windows_dir / "windows.npy", allow_pickle=False),
                            windows.pointers(owners, self.handle.count))
        self.vectors = np.asarray(self.handle.vectors, dtype=np.float32)
        self.retriever = self.handle.lexical
        self.encoder = encoder
        self.papers = self.handle.papers.all_papers()
        self.row_of = {p.id: i for i, p in enumerate(self.papers)}

    def queries(self, pairs: list[tuple[str, dict[str, int]]]) -> list[Query]:
        texts = [t for t, _ in pairs]
        vecs = self.encoder.encode(texts)
        out = []
        for (text, rel), qv in zip(pairs, vecs, strict=True):
            dense_all = self.vectors @ qv
            d_rows = np.argpartition(-dense_all, POOL)[:POOL]
            if self.windows is not None:  # second stage over the candidates only
                vecs, ptr = self.windows
                d_cand = d_rows
            d_rows = d_rows[np.argsort(-dense_all[d_rows], kind="stable")]
            terms = lexical.query_terms(self.retriever, text)
            raw = lexical.scores(self.retriever, terms)
            ceiling = lexical.ceiling(self.retriever, terms)
            b_rows = hybrid.top_rows(raw, POOL)
            union = np.union1d(d_rows, b_rows)
            if self.windows is not None:
                touched = np.union1d(d_cand, b_rows)
                dense_all = dense_all.copy()
                dense_all[touched] = windows.combine(
                    dense_all[touched], windows.best_window(vecs, ptr, touched, qv))
                d_rows = d_rows[np.argsort(-dense_all[d_rows], kind="stable")]
            bnorm = raw[union] / ceiling if ceiling > 0 else np.zeros(len(union))
            b_top = raw[b_rows[:10]] / ceiling if ceiling > 0 else np.zeros(0)
            feats = hybrid.query_features(
                text, len(terms.tokens), len(terms.unknown), lexical.idf(self.retriever, terms),
                dense_all[d_rows[:10]], b_top, hybrid.overlap_at(d_rows, b_rows))
            gains = {self.row_of[d]: g for d, g in rel.items() if d in self.row_of}
            out.append(Query(text, gains, union, d_rows, b_rows, dense_all[union], bnorm,
                             raw[union], feats, d_rows))
        return out


def ranking(q: Query, method: str, weight: float | None = None) -> np.ndarray:
    if method == "dense":
        return q.d_rows
    if method == "bm25":
        return q.b_rows
    if method == "minmax":
        rows, _ = hybrid.fuse(q.d_rows, q.dense, q.b_rows, q.bm25_raw, Fusion("minmax"))
    elif method == "rrf":
        rows, _ = hybrid.fuse(q.d_rows, q.dense, q.b_rows, q.bm25, Fusion("rrf"))
    else:
        rows, _ = hybrid.fuse(q.d_rows, q.dense, q.b_rows, q.bm25, Fusion("convex"), weight)
    rest = q.rest[~np.isin(q.rest, rows)]
    return np.concatenate([rows, rest])[:100]


def metrics(q: Query, rows: np.ndarray) -> dict[str, float]:
    ranked = [int(r) for r in rows]
    rel = {r: g for r, g in q.gains.items()}
    return {"ndcg@10": ndcg_at(ranked, rel), "mrr@10": mrr_at(ranked, rel),
            "r@1": recall_at(ranked, rel, 1), "r@10": recall_at(ranked, rel, 10),
            "r@100": recall_at(ranked, rel, 100)}


def main_metric(name: str) -> str:
    return "ndcg@10" if name.startswith("scifact") else "mrr@10"


def mean(qs: list[Query], method: str, weights=None) -> dict[str, float]:
    totals: dict[str, float] = {}
    for i, q in enumerate(qs):
        w = None if weights is None else (weights if np.isscalar(weights) else weights[i])
        for k, v in metrics(q, ranking(q, method, w)).items():
            totals[k] = totals.get(k, 0.0) + v
    return {k: v / len(qs) for k, v in totals.items()}


def fit(train: dict[str, list[Query]], low: float, high: float) -> dict:
    """Cost-sensitive logistic regression: each training query says which side to trust
    (the dense weight `high` or `low`), weighted by how much its metric differs, each set
    weighing the same in all."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for name, qs in train.items():
        m = main_metric(name)
        rows = []
        for q in qs:
            diff = metrics(q, ranking(q, "convex", high))[m] - metrics(q, ranking(q, "convex", low))[m]
            if abs(diff) > 1e-9:
                rows.append((q.features, diff))
        total = sum(abs(d) for _, d in rows) or 1.0
        for f, d in rows:
            xs.append(f)
            ys.append(int(d > 0))
            ws.append(abs(d) / total)
    x = np.array(xs)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit((x - mu) / sd, np.array(ys), sample_weight=np.array(ws) * len(ws))
    return {"low": low, "high": high, "mean": [round(float(v), 4) for v in mu],
            "scale": [round(float(v), 4) for v in sd],
            "coef": [round(float(v), 4) for v in model.coef_[0]],
            "intercept": round(float(model.intercept_[0]), 4)}


def adaptive_weights(qs: list[Query], model: dict) -> np.ndarray:
    """As the Searcher sets it: meaning only when no query term is in the index."""
    return np.array([hybrid.adaptive_weight(q.features, model) if len(q.b_rows) else 1.0
                     for q in qs])


def table(sets: dict[str, list[Query]], rows: list[tuple[str, str, object]]) -> str:
    out = ["| query set | queries | method | nDCG@10 | MRR@10 | R@1 | R@10 | R@100 |",
           "|---|---|---|---|---|---|---|---|"]
    for name, qs in sets.items():
        for label, method, weights in rows:
            w = weights(qs) if callable(weights) else weights
            m = mean(qs, method, w)
            out.append(f"| {name} | {len(qs)} | {label} | {m['ndcg@10']:.3f} | {m['mrr@10']:.3f} | "
                       f"{m['r@1']:.3f} | {m['r@10']:.3f} | {m['r@100']:.3f} |")
    return "\n".join(out)


def load_sets(args, encoder) -> tuple[dict, dict, Corpus]:
    arxiv = Corpus(args.index, encoder, args.windows)
    para = read_pairs(ROOT / "bench/queries/paraphrase_80k.tsv") + read_pairs(
        ROOT / "bench/queries/paraphrase.tsv")
    para = [(pid, q) for pid, q in para if pid in arxiv.row_of]
    papers = [p for p in arxiv.papers if not p.id.startswith("new-")]
    ki_test = known_item(papers, 200, seed=3)
    held = {pid for pid, _ in ki_test}
    ki_train = [(pid, q) for pid, q in known_item(papers, 260, seed=101) if pid not in held][:200]
    arxiv.pairs = {"paraphrase": [(p, q) for p, q in para if not is_train(p)],
                   "known-item": ki_test}
    train = {"paraphrase": arxiv.queries([(q, {p: 1}) for p, q in para if is_train(p)]),
             "known-item": arxiv.queries([(q, {p: 1}) for p, q in ki_train])}
    test = {"paraphrase": arxiv.queries([(q, {p: 1}) for p, q in para if not is_train(p)]),
            "known-item": arxiv.queries([(q, {p: 1}) for p, q in ki_test])}
    if args.beir.exists():
        from relevance import load_index

        load_index(args.beir, args.scifact_cache)
        sci = Corpus(args.scifact_cache, encoder, args.scifact_windows)
        queries = read_queries(args.beir / "queries.jsonl")
        for split, target in (("train", train), ("test", test)):
            qrels = read_qrels(args.beir / "qrels" / f"{split}.tsv")
            target["scifact"] = sci.queries([(queries[q], rel) for q, rel in qrels.items()
                                             if q in queries])
    return train, test, arxiv


def floor_report(arxiv: Corpus, test: dict, model: dict) -> None:
    """Where the relevance floor can sit: the best cosine and BM25 share that nonsense and
    off-topic queries reach, against those of the right papers found in the top 10."""
    lines = [x for x in (ROOT / "bench/queries/nonsense.txt").read_text().splitlines()
             if x and not x.startswith("#")]
    nonsense = arxiv.queries([(t, {}) for t in lines])
    print("\nnonsense / off-topic queries: best cosine, best BM25 share")
    for q in sorted(nonsense, key=lambda q: -q.dense.max()):
        print(f"  {q.dense.max():.3f}  {q.bm25.max() if len(q.bm25) else 0:.3f}  {q.text}")
    targets = []
    for name in ("paraphrase", "known-item"):
        qs = test[name]
        for q, w in zip(qs, adaptive_weights(qs, model), strict=True):
            rows = ranking(q, "adaptive", w)[:10]
            target = next(iter(q.gains))
            if target in set(rows.tolist()):
                at = np.searchsorted(q.union, target)
                targets.append((name, float(q.dense[at]), float(q.bm25[at])))
    print(f"right papers in the top 10: {len(targets)}")
    for d in (0.2, 0.25, 0.3, 0.35):
        for b in (0.3, 0.4, 0.5, 0.6):
            lost = sum(not (x >= d or y >= b) for _, x, y in targets)
            kept = sum(bool(np.any((q.dense >= d) | (q.bm25 >= b))) for q in nonsense)
            print(f"floor cosine {d} / BM25 share {b}: right papers lost {lost}/{len(targets)}, "
                  f"nonsense queries with a hit {kept}/{len(nonsense)}")


def with_typo(text: str, rng) -> str:
    """Swap two adjacent inner letters of the query's longest word (a typing slip)."""
    words = text.split()
    i = max(range(len(words)), key=lambda j: len(words[j]))
    w = words[i]
    if len(w) < 5:
        return text
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def typo_report(index: Path, encoder, test: dict, pairs: dict) -> None:
    """Spelling correction through the Searcher: held-out queries with a typo, searched as
    typed and with correction; and how often a clean query gets "corrected"."""
    import random

    from search import Searcher

    searcher = Searcher(index, encoder, floor=0.0)
    rng = random.Random(5)
    print("\n| set | queries | as typed MRR@10 | corrected MRR@10 | clean MRR@10 | "
          "corrections taken (typo / clean) |\n|---|---|---|---|---|---|")
    for name in ("known-item", "paraphrase"):
        typo_mrr = fixed_mrr = clean_mrr = 0.0
        taken_typo = taken_clean = 0
        items = pairs[name]
        for pid, text in items:
            typo = with_typo(text, rng)
            for q, as_typed in ((typo, True), (typo, False), (text, False)):
                r = searcher.query(q, k=10, correct=not as_typed)
                ranked = [h.id for h in r.hits]
                m = mrr_at(ranked, {pid: 1})
                if q is typo and as_typed:
                    typo_mrr += m
                elif q is typo:
                    fixed_mrr += m
                    taken_typo += r.corrected
                else:
                    clean_mrr += m
                    taken_clean += r.corrected
        n = len(items)
        print(f"| {name} | {n} | {typo_mrr / n:.3f} | {fixed_mrr / n:.3f} | {clean_mrr / n:.3f} | "
              f"{taken_typo} / {taken_clean} |")


def rules_report(train: dict, test: dict) -> None:
    """Rules on top of the shipped weight: meaning alone when BM25's top share is under T
    and the top cosine at least D, or the weight to a power g; chosen on training."""
    def score(sets, fn):
        return {n: mean(qs, "convex", np.array([fn(q) for q in qs]))[main_metric(n)]
                for n, qs in sets.items()}

    def base(q):
        return hybrid.adaptive_weight(q.features) if len(q.b_rows) else 1.0

    def rule(t, d):
        return lambda q: 1.0 if q.features[5] < t and q.features[7] >= d else base(q)

    variants = {f"bm25_top < {t}, dense_top >= {d}": rule(t, d)
                for t in (0.2, 0.3, 0.4, 0.5) for d in (0.0, 0.3, 0.4, 0.5, 0.6, 0.65)}
    variants.update({f"weight ** {g}": (lambda q, g=g: base(q) ** g) for g in (0.5, 0.7)})
    before = score(train, base)
    print(f"\nshipped weight: train {before}, held out {score(test, base)}")
    for name, fn in variants.items():
        got = score(train, fn)
        keeps = all(got[n] >= before[n] for n in before)
        print(f"{name}: train {got} {'loses no set' if keeps else ''}")
        if keeps and got != before:
            print(f"   held out {score(test, fn)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="the 80k arXiv index")
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--scifact-cache", type=Path, default=Path("/tmp/papersift-scifact-index"))
    parser.add_argument("--fit", action="store_true", help="fit the adaptive weight and print it")
    parser.add_argument("--json", type=Path, help="write the fitted model here")
    parser.add_argument("--windows", type=Path, help="window vectors of the 80k index "
                        "(bench/windows.py); SciFact's are looked for in --scifact-windows")
    parser.add_argument("--scifact-windows", type=Path)
    parser.add_argument("--typos", action="store_true", help="also measure spelling correction")
    parser.add_argument("--rules", action="store_true",
                        help="also try rules on top of the shipped weight (chosen on training)")
    args = parser.parse_args()
    encoder = SentenceTransformerEncoder(precision="float32")
    started = time.perf_counter()
    train, test, arxiv = load_sets(args, encoder)
    print(f"candidates for {sum(map(len, train.values())) + sum(map(len, test.values()))} "
          f"queries in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    # One fixed weight for every query, chosen on training queries (each set weighing the same).
    def train_score(weights_for) -> tuple[float, dict]:
        per = {n: mean(qs, "convex", weights_for(qs))[main_metric(n)] for n, qs in train.items()}
        return sum(per.values()) / len(per), per

    fixed = max(GRID, key=lambda w: train_score(lambda qs, w=w: w)[0])
    print(f"fixed convex weight chosen on train: {fixed} {train_score(lambda qs: fixed)[1]}")
    model = hybrid.ADAPTIVE
    if args.fit:
        best = None
        for low in (0.1, 0.2, 0.3, 0.4, 0.5):
            for high in (0.7, 0.8, 0.85, 0.9, 0.95, 1.0):
                m = fit(train, low, high)
                score, per = train_score(lambda qs, m=m: adaptive_weights(qs, m))
                print(f"low {low} high {high}: train {score:.4f} {per}")
                if best is None or score > best[0]:
                    best = (score, m)
        model = best[1]
        print("ADAPTIVE = " + json.dumps(model))
        if args.json:
            args.json.write_text(json.dumps(model, indent=1))
    rows = [("dense", "dense", None), ("bm25", "bm25", None),
            ("min-max blend 0.5 (before)", "minmax", None), ("rrf", "rrf", None),
            (f"convex, fixed weight {fixed}", "convex", float(fixed)),
            ("adaptive (default)", "adaptive", lambda qs: adaptive_weights(qs, model))]
    print("\nHeld-out sets:")
    print(table(test, rows))
    print("\nTraining sets:")
    print(table(train, rows))
    floor_report(arxiv, test, model)
    if args.typos:
        typo_report(args.index, encoder, test, arxiv.pairs)
    if args.rules:
        rules_report(train, test)


if __name__ == "__main__":
    main()
