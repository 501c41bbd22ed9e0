"""A realistic large corpus from the 80k real papers: N papers (default 1M) for scale work.

The 79,990 real papers keep their own vectors (the index given with --index); every other
paper sits between a real paper `a` and one of a's 20 nearest neighbours `b` (same topic):
its vector is the normalised blend t*a + (1-t)*b (t uniform in [0.3, 0.7]); its title is
the first half of a's title's words and the second half of b's, its abstract the first half
of a's sentences and the second half of b's; authors, date and categories are a's. Unlike
synthetic clusters, the neighbourhoods of real questions are as crowded and as uneven as
the real corpus's (the real papers' own topics, grown 12x).

Writes OUT/papers.jsonl and OUT/vectors.npy (float32, row-aligned), for
  papersift build OUT/papers.jsonl --vectors OUT/vectors.npy \\
      --model-name sentence-transformers/all-MiniLM-L6-v2 --index INDEX

Usage: python bench/realistic.py --index /tmp/ix/80k --out /tmp/realistic-1m [--n 1000000]
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

from indexer.store import open_index  # noqa: E402

NEIGHBOURS = 20
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def halves(a: list[str], b: list[str]) -> list[str]:
    return a[:max(1, len(a) // 2)] + b[len(b) // 2:]


def record(paper) -> dict:
    return {"id": paper.id, "title": paper.title, "abstract": paper.abstract,
            "authors": list(paper.authors), "published": paper.published,
            "categories": list(paper.categories)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True, help="the 80k real index")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    handle = open_index(args.index)
    real = np.ascontiguousarray(handle.vectors, dtype=np.float32)
    papers = handle.papers.all_papers()
    m, dim = real.shape
    exact = faiss.IndexFlatIP(dim)
    exact.add(real)
    _, near = exact.search(real, NEIGHBOURS + 1)
    print(f"neighbours of {m:,} real papers in {time.perf_counter() - started:.0f} s")
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    extra = max(0, args.n - m)
    a = rng.integers(0, m, extra)
    b = near[a, rng.integers(1, NEIGHBOURS + 1, extra)]
    b = np.where(b < 0, a, b)
    t = rng.uniform(0.3, 0.7, extra).astype(np.float32)[:, None]
    vectors = np.lib.format.open_memmap(args.out / "vectors.npy", mode="w+", dtype=np.float32,
                                        shape=(m + extra, dim))
    vectors[:m] = real
    for start in range(0, extra, 100_000):
        s = slice(start, min(extra, start + 100_000))
        blend = t[s] * real[a[s]] + (1 - t[s]) * real[b[s]]
        vectors[m + s.start:m + s.stop] = blend / np.linalg.norm(blend, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    with (args.out / "papers.jsonl").open("w", encoding="utf-8") as f:
        for paper in papers:
            f.write(json.dumps(record(paper), ensure_ascii=False) + "\n")
        for j in range(extra):
            pa, pb = papers[a[j]], papers[b[j]]
            f.write(json.dumps({
                "id": f"synth-{j:07d}",
                "title": " ".join(halves(pa.title.split(), pb.title.split())),
                "abstract": " ".join(halves(_SENTENCE.split(pa.abstract),
                                            _SENTENCE.split(pb.abstract))),
                "authors": list(pa.authors), "published": pa.published,
                "categories": list(pa.categories)}, ensure_ascii=False) + "\n")
    print(f"{m + extra:,} papers ({extra:,} blended) in {args.out} "
          f"in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
