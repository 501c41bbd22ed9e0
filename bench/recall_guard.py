"""Recall guard: which guard queries predict the recall real questions get from an IVF index.

For one index (the 80k real set, or the realistic 1M set of bench/realistic.py) an IVF index
is trained over its vectors, and recall@10 against exact search is measured at each nprobe
for:

  paraphrase   the hand-written plain-language questions of bench/queries/paraphrase_80k.tsv
               (a person's words, encoded as queries) - what users see;
  known-item   keyword queries made from titles (bench/query_types.py);
  title words / abstract words / guard   the guard's `ann.text_probe` (3 words of a title,
               8 of an abstract, each query's own paper left out): its halves and the whole;
  whole titles whole titles and first sentences of abstracts (tried first: too optimistic);
  noise        the old guard's corpus vectors moved to cosine 0.55 (`ann.noise_probe`).

Usage: python bench/recall_guard.py --index /tmp/ix/80k [--sample 500] [--nlist N] [--sq8]
"""

from __future__ import annotations

import argparse
import json
import re
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


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--nlist", type=int, default=0)
    parser.add_argument("--sq8", action="store_true",
                        help="8-bit codes refined on the stored vectors (the default index)")
    args = parser.parse_args()
    handle = open_index(args.index)
    vectors = np.ascontiguousarray(handle.vectors, dtype=np.float32)
    n, dim = vectors.shape
    encoder = SentenceTransformerEncoder()
    paraphrase = [q for p, q in read_pairs(ROOT / "bench/queries/paraphrase_80k.tsv")
                  if handle.papers.row_of(p) is not None]
    sample_rows = np.random.default_rng(7).choice(n, size=min(n, 20_000), replace=False)
    sampled = list(handle.papers.papers(sorted(sample_rows.tolist())).values())
    known = [q for _, q in known_item(sampled, 150)]
    sets: dict[str, ann.Probe] = {}
    for name, texts in (("paraphrase", paraphrase), ("known-item", known)):
        sets[name] = ann.Probe(unit(encoder.encode(texts)), np.full(len(texts), -1), name)
    rows = np.sort(np.random.default_rng(0).choice(n, size=min(n, args.sample), replace=False))
    papers = handle.papers.papers(rows.tolist())
    titles = [papers[int(r)].title for r in rows]
    abstracts = [papers[int(r)].abstract for r in rows]
    started = time.perf_counter()
    probe = ann.text_probe(titles, abstracts, encoder.encode, sample=len(rows), seed=0)
    probe = ann.Probe(probe.vectors, rows[probe.rows], probe.kind)  # rows into the index
    probe_seconds = time.perf_counter() - started
    even = np.arange(len(rows)) % 2 == 0
    sets["title words"] = ann.Probe(probe.vectors[even], probe.rows[even], "title words")
    sets["abstract words"] = ann.Probe(probe.vectors[~even], probe.rows[~even], "abstract")
    sets["guard"] = probe
    whole = [t if i % 2 == 0 else re.split(r"(?<=[.!?])\s+(?=[A-Z])", a, maxsplit=1)[0][:300]
             for i, (t, a) in enumerate(zip(titles, abstracts, strict=True))]
    sets["whole titles"] = ann.Probe(unit(encoder.encode(whole)), rows, "titles+first sentences")
    sets["noise"] = ann.noise_probe(vectors, args.sample)
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    for name, pr in sets.items():
        d, i = exact.search(pr.vectors, 2)
        first = np.where(i[:, 0] == pr.rows, d[:, 1], d[:, 0])
        print(f"{name}: median best cosine (own paper left out) {np.median(first):.3f}")
    nlist = args.nlist or ann.nlist_for(n)
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    if args.sq8:
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
        index = ann.Refined(ivf, vectors)  # as the searcher asks it
    else:
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index = ivf
    rng = np.random.default_rng(0)
    ivf.train(vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)])
    ivf.add(vectors)
    build = time.perf_counter() - started
    table: dict[str, dict[int, float]] = {name: {} for name in sets}
    for nprobe in [p for p in ann.NPROBES if p <= max(1, nlist // 4)]:
        ivf.nprobe = nprobe
        for name, queries in sets.items():
            table[name][nprobe] = round(ann.recall_at_10(index, exact, queries), 4)
    print(json.dumps({"index": str(args.index), "n": n, "nlist": nlist, "sq8": args.sq8,
                      "build_s": round(build, 1), "probe_encode_s": round(probe_seconds, 1),
                      "queries": {k: len(v.rows) for k, v in sets.items()}}))
    header = ["nprobe", *table]
    print(" | ".join(f"{h:>15}" for h in header))
    for nprobe in table["paraphrase"]:
        print(" | ".join([f"{nprobe:>15}", *(f"{table[name][nprobe]:>15.4f}" for name in table)]))


if __name__ == "__main__":
    main()
