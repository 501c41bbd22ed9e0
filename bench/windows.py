"""Encode the passage windows of an index's papers (indexer/windows.py) into a cache folder.

Writes OUT/windows.npy (float16, one row per window) and OUT/owners.npy (the paper row of
each window), used by bench/fusion.py --windows OUT to measure window scoring before the
index format carries windows. Prints windows per paper and encoding speed.

Usage: python bench/windows.py --index DIR --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import windows  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.store import open_index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    handle = open_index(args.index)
    papers = handle.papers.all_papers()
    encoder = SentenceTransformerEncoder(precision="auto")
    started = time.perf_counter()
    vectors, owners = windows.encode(papers, encoder)
    took = time.perf_counter() - started
    with_windows = np.count_nonzero(np.bincount(owners, minlength=len(papers)))
    print(f"{len(papers)} papers, {len(owners)} windows ({len(owners) / len(papers):.2f} per paper; "
          f"{with_windows / len(papers):.1%} of papers longer than one window); split and "
          f"encoded in {took:.0f} s ({len(owners) / took:.1f} windows/s, {encoder.backend_in_use})",
          file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "windows.npy", vectors.astype(np.float16), allow_pickle=False)
    np.save(args.out / "owners.npy", owners, allow_pickle=False)


if __name__ == "__main__":
    main()
