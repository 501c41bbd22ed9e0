"""Build throughput, peak memory and query latency of the `papersift` command.

Runs the installed CLI as separate processes, as a user would:
  1. `papersift build` on the bundled 2,000 papers: papers/s;
  2. `papersift build` on the 80k arXiv set: wall time, papers/s and peak RSS;
  3. `papersift search --queries` with 100 queries on the 80k index: p50/p95 of took_ms
     (per-query time inside one process: encode + FAISS + metadata, model loaded once).

Usage: python bench/build_and_query.py [--skip-80k] [--out bench/results/build_and_query.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent / "papersift"


def run_build(corpus: Path, index: Path, *extra: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run([str(BIN), "build", str(corpus), "--index", str(index), *extra],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"build failed: {proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    count = json.loads(next((index).glob("gen-*/manifest.json")).read_text())["count"]
    return {"corpus": str(corpus.name), "papers": count, "seconds": round(seconds, 1),
            "papers_per_s": round(count / seconds, 1),
            "peak_rss_mib": round(max(peak, before) / 1024, 0), "summary": proc.stdout.strip()}


def make_queries(corpus: Path, n: int, seed: int = 7) -> list[str]:
    """Question-like queries from random papers' titles (first 8 words, lower-cased)."""
    opener = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rt", encoding="utf-8") as f:
        titles = [json.loads(line)["title"] for line in f]
    rng = random.Random(seed)
    return [" ".join(t.lower().split()[:8]) for t in rng.sample(titles, n)]


def run_queries(index: Path, queries: list[str], k: int = 10) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(queries))
    proc = subprocess.run([str(BIN), "search", "--queries", f.name, "-k", str(k), "--json",
                           "--index", str(index)], capture_output=True, text=True)
    os.unlink(f.name)
    if proc.returncode:
        sys.exit(f"search failed: {proc.stderr}")
    took = sorted(json.loads(line)["took_ms"] for line in proc.stdout.splitlines())
    took_warm = took if len(took) < 3 else took  # every query counts, the first included
    return {"queries": len(took), "k": k,
            "p50_ms": round(statistics.median(took_warm), 2),
            "p95_ms": round(took_warm[int(0.95 * (len(took_warm) - 1))], 2),
            "max_ms": round(took_warm[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-80k", action="store_true")
    parser.add_argument("--only-80k", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "papersift-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "build_and_query.json")
    args = parser.parse_args()
    results: dict = {"cpu": os.cpu_count()}
    small = ROOT / "data" / "demo-arxiv-2k.jsonl"
    if not args.only_80k:
        results["build_2k"] = run_build(small, args.workdir / "ix-2k")
        print(json.dumps(results["build_2k"]), flush=True)
        results["build_2k_float32"] = run_build(
            small, args.workdir / "ix-2k-fp32", "--precision", "float32"
        )
        print(json.dumps(results["build_2k_float32"]), flush=True)
    if not args.skip_80k:
        big = SHARED / "arxiv-80k" / "papers.jsonl.gz"
        results["build_80k"] = run_build(big, args.workdir / "ix-80k")
        print(json.dumps(results["build_80k"]), flush=True)
        results["query_80k"] = run_queries(args.workdir / "ix-80k", make_queries(big, 100))
        print(json.dumps(results["query_80k"]), flush=True)
    if args.out.exists():  # keep figures from earlier partial runs
        results = {**json.loads(args.out.read_text()), **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
