"""Sharded search against one index: same answers? how much slower? (issue 15)

    python bench/shards.py --index /tmp/ix/80k --shards 2 4 [--ray auto] [--queries N]

Cuts the index into each number of shards (in a temporary folder, or --out), then asks
the same questions (the paraphrase set's, as text, encoded once by the packaged query
encoder) of the whole index and of the shards, in this process and, with --ray, through
one Ray actor per shard on that cluster. Prints, per setup: hybrid and dense p50 / p99 of
the search call (query vectors precomputed: encoding is the same everywhere), how many
queries have the same top-10 as the whole index, the largest score difference, the
shards' size on disk, and the resident memory of a process holding one shard open.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.query_encoder import query_encoder  # noqa: E402
from indexer.shard import write_shards  # noqa: E402
from search.searcher import Searcher  # noqa: E402
from search.sharded import ShardedSearcher  # noqa: E402


def questions(n: int) -> list[str]:
    path = ROOT / "bench" / "queries" / "paraphrase_80k.tsv"
    rows = [line.rstrip("\n").split("\t")[-1] for line in path.open()
            if line.strip() and not line.startswith("#")]
    return rows[:n]


class Fixed:
    """The query encoder with every question encoded once beforehand."""

    def __init__(self, encoder, texts):
        self.name, self.fingerprint, self.dim = encoder.name, encoder.fingerprint, encoder.dim
        self._vectors = dict(zip(texts, encoder.encode(texts), strict=True))
        self._encoder = encoder

    def encode(self, texts):
        return np.stack([self._vectors.get(t) if t in self._vectors else self._encoder.encode([t])[0]
                         for t in texts])


def timed(searcher, qs, mode):
    answers, ms = [], []
    for q in qs:
        started = time.perf_counter()
        r = searcher.query(q, 10, mode=mode, correct=False, floor=False)
        ms.append((time.perf_counter() - started) * 1000)
        answers.append([(h.id, h.score) for h in r.hits])
    return answers, np.percentile(ms, 50), np.percentile(ms, 99)


def exact_top10(searcher, encoder, qs) -> list[list[str]]:
    """Each question's true dense top-10 (whole-text cosine, every paper scored)."""
    q = np.stack([encoder.encode([t])[0] for t in qs]).astype(np.float32)
    vectors = searcher.index.vectors
    best_s = np.full((len(qs), 10), -np.inf, dtype=np.float32)
    best_r = np.zeros((len(qs), 10), dtype=np.int64)
    for start in range(0, len(vectors), 200_000):
        block = np.asarray(vectors[start:start + 200_000], dtype=np.float32) @ q.T  # (m, nq)
        top = np.argpartition(-block, 9, axis=0)[:10].T  # (nq, 10)
        scores = np.take_along_axis(block.T, top, axis=1)
        both_s = np.concatenate([best_s, scores], axis=1)
        both_r = np.concatenate([best_r, top + start], axis=1)
        keep = np.argsort(-both_s, axis=1)[:, :10]
        best_s, best_r = np.take_along_axis(both_s, keep, 1), np.take_along_axis(both_r, keep, 1)
    papers = searcher.index.papers.papers(sorted(set(best_r.ravel().tolist())))
    return [[papers[int(r)].id for r in row] for row in best_r]


def recall(answers, truth) -> float:
    return float(np.mean([len({x[0] for x in a[:10]} & set(t)) / 10 for a, t in
                          zip(answers, truth, strict=True)]))


def shard_rss(shard: Path) -> float:
    """VmHWM (MB) of a fresh process that opens one shard and answers one dense query."""
    code = (
        "import numpy as np, sys; from search.searcher import Searcher\n"
        f"s = Searcher({str(shard)!r}, None)\n"
        "v = np.asarray(s.index.vectors[0], dtype=np.float32)\n"
        "s.search_vector(v, 10)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, type=Path)
    ap.add_argument("--shards", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--ray", default=None, help="a Ray cluster's address: also serve through actors")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None, help="where to write shards (default: a temp dir)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    qs = questions(args.queries)
    encoder = Fixed(query_encoder(None), qs)
    whole = Searcher(args.index, encoder)
    for q in qs[:5]:
        whole.query(q, 10)  # warm: page cache, lazy imports
    base = {mode: timed(whole, qs, mode) for mode in ("hybrid", "dense")}
    truth = exact_top10(whole, encoder, qs)
    report = {"index": str(args.index), "papers": whole.count, "queries": len(qs),
              "whole": {m: {"p50_ms": round(v[1], 2), "p99_ms": round(v[2], 2)}
                        for m, v in base.items()}}
    report["whole"]["dense"]["recall_at_10_vs_exact"] = round(recall(base["dense"][0], truth), 4)
    print(json.dumps(report["whole"]), flush=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for n in args.shards:
            folder = Path(tmp) / f"{n}"
            started = time.perf_counter()
            write_shards(args.index, n, folder)
            took = time.perf_counter() - started
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            entry = {"write_s": round(took, 1), "size_mb": round(size / 2**20, 1),
                     "one_shard_rss_mb": round(shard_rss(folder / "shard-000"), 1)}
            for where, address in [("local", None)] + ([("ray", args.ray)] if args.ray else []):
                sharded = ShardedSearcher(folder, encoder, address=address)
                for q in qs[:5]:
                    sharded.query(q, 10)
                for mode in ("hybrid", "dense"):
                    answers, p50, p99 = timed(sharded, qs, mode)
                    same = sum(1 for a, b in zip(answers, base[mode][0], strict=True)
                               if [x[0] for x in a] == [x[0] for x in b])
                    diff = max((abs(x[1] - y[1]) for a, b in zip(answers, base[mode][0], strict=True)
                                for x, y in zip(a, b, strict=False)), default=0.0)
                    entry[f"{where}_{mode}"] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                                                "same_top10": f"{same}/{len(qs)}",
                                                "max_score_diff": float(f"{diff:.2g}")}
                    if mode == "dense":
                        entry[f"{where}_{mode}"]["recall_at_10_vs_exact"] = round(
                            recall(answers, truth), 4)
                sharded.close()
            report[f"{n}_shards"] = entry
            print(n, json.dumps(entry), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
