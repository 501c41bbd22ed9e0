"""What `update` pays to verify the served generation at 1M papers.

A synthetic 1M generation (seeded random unit vectors, flat float32; metadata with
900-character abstracts and two authors; no BM25) is written once, then opened with and
without sha256 verification, twice each (the second pair with a warm page cache).

Usage: python bench/verify_scale.py [--n 1000000] [--workdir /tmp/papersift-verify]
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from indexer.records import Paper  # noqa: E402
from indexer.store import ModelInfo, open_index, write_generation, writer_lock  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=1_000_000)
parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersift-verify"))
args = parser.parse_args()
root, n = args.workdir, args.n
if not (root / "CURRENT").exists():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, 384), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    papers = [Paper(id=f"syn-{i}", title=f"synthetic paper {i}", abstract="x" * 900,
                    authors=(f"Author {i % 5000}", "Wei Li"), published="2025-01-01",
                    categories=("cs.LG",)) for i in range(n)]
    t = time.perf_counter()
    with writer_lock(root):
        write_generation(root, papers, v, ModelInfo("m", "f" * 64, 384), index_type="flat",
                         with_lexical=False)
    print(f"wrote in {time.perf_counter() - t:.0f} s")
for verify in (False, True, False, True):
    t = time.perf_counter()
    h = open_index(root, verify=verify)
    d = time.perf_counter() - t
    print(f"verify={verify}: {d:.2f} s, {h.size_bytes() / 1e9:.2f} GB")
    h.close()
