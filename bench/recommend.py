""""More like these" measured: Rocchio centroid against a per-set linear SVM on SciFact.

Judged related-paper sets from BEIR SciFact (evaluation only, never shipped): the corpus
documents cited together by one claim (train + test qrels) are related. Leave one out:
for each set of 2+ documents and each member, the others are the liked papers and the
held-out one must come back; Recall@10 and MRR@10 of the held-out document over all
trials. "nearest to one" ranks by the first liked paper alone (what `similar` does).
A second run adds two random documents from other sets as unliked papers.

Usage: python bench/recommend.py --index SCIFACT_INDEX [--beir ../shared/data/scifact]
(the index: `papersift build ../shared/data/scifact/corpus.jsonl --index DIR`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from search import Searcher  # noqa: E402
from search.evaluate import read_qrels  # noqa: E402


def related_sets(beir: Path, known: set[str]) -> list[list[str]]:
    sets = []
    for split in ("train", "test"):
        path = beir / "qrels" / f"{split}.tsv"
        if path.exists():
            for docs in read_qrels(path).values():
                members = sorted(d for d in docs if d in known)
                if len(members) >= 2:
                    sets.append(members)
    return [list(s) for s in dict.fromkeys(tuple(s) for s in sets)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    args = parser.parse_args()
    searcher = Searcher(args.index)
    ids = {p.id for p in searcher.index.papers.all_papers()}
    sets = related_sets(args.beir, ids)
    rng = random.Random(0)
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    timings: dict[str, list[float]] = defaultdict(list)
    trials = 0
    for members in sets:
        others = [d for s in sets if s is not members for d in s if d not in members]
        for held in members:
            liked = [d for d in members if d != held]
            unliked = rng.sample(others, 2)
            trials += 1
            for name, like, unlike, method in (
                    ("nearest to one", liked[:1], [], "rocchio"),
                    ("rocchio", liked, [], "rocchio"),
                    ("svm", liked, [], "svm"),
                    ("rocchio + 2 unliked", liked, unliked, "rocchio"),
                    ("svm + 2 unliked", liked, unliked, "svm")):
                started = time.perf_counter()
                ranked = [h.id for h in searcher.recommend(like, unlike, 10, method=method)]
                timings[name].append((time.perf_counter() - started) * 1000)
                rank = ranked.index(held) + 1 if held in ranked else 0
                results[name]["recall@10"].append(1.0 if rank else 0.0)
                results[name]["mrr@10"].append(1.0 / rank if rank else 0.0)
    report = {"sets": len(sets), "trials": trials, "papers": searcher.count}
    for name, metrics in results.items():
        report[name] = {m: round(float(np.mean(v)), 3) for m, v in metrics.items()}
        report[name]["p50_ms"] = round(float(np.median(timings[name])), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
