"""Thread settings, measured: FAISS OpenMP threads for one query, torch threads for one
query's encoding and for a build's batch encoding; on a quiet machine and with one core
kept busy by another process (a second app user, a build, a browser).

Usage: python bench/threads.py [--index INDEX_80K] [--ivf IVF_INDEX]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT.parent / "shared" / "data" / "arxiv-80k" / "papers.jsonl.gz"


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def p50(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(sorted(times)[len(times) // 2], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an exact index (e.g. the 80k set)")
    parser.add_argument("--ivf", type=Path, help="an IVF index (e.g. bench/scale.py's 1M)")
    args = parser.parse_args()
    import faiss
    import torch

    from indexer.encoder import SentenceTransformerEncoder
    from indexer.store import open_index

    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rng = random.Random(3)
    abstracts = [r["title"] + ". " + r["abstract"] for r in rng.sample(rows, 256)]
    queries = [r["title"] for r in rng.sample(rows, 50)]
    encoder = SentenceTransformerEncoder(precision="auto", backend="torch")
    encoder.encode(abstracts[:16])
    from indexer.query_encoder import query_encoder

    fast = query_encoder()  # the query encoder of every front end
    fast.encode(["warm-up"])
    indexes = {name: open_index(path) for name, path in (("flat", args.index), ("ivf", args.ivf))
               if path}
    qv = encoder.encode(queries)
    result: dict = {}
    stop = mp.Event()
    for load in ("quiet", "one core busy"):
        spinner = None
        if load != "quiet":
            spinner = mp.Process(target=_spin, args=(stop,), daemon=True)
            spinner.start()
            time.sleep(1)
        row: dict = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            faiss.omp_set_num_threads(threads)
            qs = itertools.cycle(queries)
            row[f"encode one query, {threads} thread(s) ms"] = p50(
                lambda qs=qs: encoder.encode([next(qs)]), 40)
            if threads == 1:
                qs = itertools.cycle(queries)
                row["encode one query, OpenVINO (1 thread) ms"] = p50(
                    lambda qs=qs: fast.encode([next(qs)]), 40)
            t = time.perf_counter()
            encoder.encode(abstracts)
            row[f"encode 256 abstracts, {threads} thread(s) papers/s"] = round(
                len(abstracts) / (time.perf_counter() - t), 1)
            for name, handle in indexes.items():
                vs = itertools.cycle(qv)
                row[f"faiss {name} {handle.count:,} one query, {threads} thread(s) ms"] = p50(
                    lambda h=handle, vs=vs: h.faiss_index.search(next(vs)[None, :], 10), 60)
        result[load] = row
        if spinner:
            stop.set()
            spinner.join()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
