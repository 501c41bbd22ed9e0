"""Author filter at scale: name-part postings against the old substring scan.

The 80k set's real author lists are repeated to N papers (ids made unique) and written
with the index's own metadata writer; then each query is timed as the Searcher's author
filter runs it (`PaperTable.rows_matching(author=...)`), median and worst of 20 runs, for
the name-part index and for the LIKE scan over the JSON author lists it replaces.

Usage: python bench/authors.py [--n 1000000] [--workdir /tmp/papersift-authors]
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.readers import read_papers  # noqa: E402
from indexer.records import Paper  # noqa: E402
from indexer.store import PAPERS_DB, PaperTable, _write_papers  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "arxiv-80k" / "papers.jsonl.gz"
QUERIES = ["Li", "Wang", "Zhang", "Smith", "J Smith", "Müller", "Yann LeCun", "Hinton",
           "Wei Li", "Sergey Levine", "Kaiming He", "nobody-at-all"]


def timed(fn, runs: int = 20) -> tuple[float, float, int]:
    times, found = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        found = len(fn())
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(max(times)), found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersift-authors"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"{args.n}-{PAPERS_DB}"
    if not db.exists():
        source = [p for p in read_papers(CORPUS) if isinstance(p, Paper)]
        papers = [dataclasses.replace(source[i % len(source)], id=f"{source[i % len(source)].id}-{i}",
                                      abstract="")
                  for i in range(args.n)]
        t = time.perf_counter()
        _write_papers(db, papers)
        print(f"wrote {args.n:,} papers' metadata in {time.perf_counter() - t:.1f} s "
              f"({db.stat().st_size / 1e6:.0f} MB)")
    table = PaperTable(db)
    old = PaperTable(db)
    old.__dict__["has_author_index"] = False  # the substring scan it replaces
    conn = sqlite3.connect(db)
    size = conn.execute("SELECT sum(length(codes)) + sum(length(part)) FROM author_postings"
                        ).fetchone()[0]
    print(f"author postings: {size / 1e6:.1f} MB in {args.n:,} papers")
    print(f"{'query':<16} {'papers':>8} {'p50 ms':>8} {'max ms':>8} | {'LIKE scan':>9} {'papers':>8}")
    for q in QUERIES:
        p50, worst, found = timed(lambda q=q: table.rows_matching(author=q))
        l50, _, like = timed(lambda q=q: old.rows_matching(author=q), runs=3)
        print(f"{q:<16} {found:>8,} {p50:>8.2f} {worst:>8.2f} | {l50:>9.1f} {like:>8,}")


if __name__ == "__main__":
    main()
