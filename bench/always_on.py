"""Always on: a long-running reader across updates, at the 80k scale.

A copy of INDEX is opened by an `Engine` (as the app and the API hold it) with the real
model; one thread asks questions continuously (the paraphrase set's questions, one after
another) while the main thread runs three `update`s of new papers (stored papers under
new ids and titles). Reported: queries answered and failed, the generation each
was answered from, when the new papers became searchable, the reader's per-request
`CURRENT` check (stat) cost, each update's time with the share spent verifying the
served generation (sha256 of every file), and the generations left on disk.

Usage: python bench/always_on.py --index /tmp/ix/80k [--batch 50] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import store  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.records import Paper  # noqa: E402
from indexer.update import update_index  # noqa: E402
from search.engine import _stamp, open_engine  # noqa: E402

QUESTIONS = ROOT / "bench" / "queries" / "paraphrase_80k.tsv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersift-always-on"))
    args = parser.parse_args()
    root = args.workdir / "index"
    shutil.rmtree(args.workdir, ignore_errors=True)
    shutil.copytree(args.index, root)

    # the per-request check: one stat of CURRENT
    pointer = root / store.CURRENT
    t = time.perf_counter()
    for _ in range(100_000):
        _stamp(pointer)
    stat_us = (time.perf_counter() - t) / 100_000 * 1e6

    engine = open_engine(root, warm=True)
    # new papers: stored ones under new ids and titles (the demo set is inside the 80k)
    stored = engine.searcher().index.papers.papers(range(0, 3 * args.batch * 97, 97))
    fresh = [replace(p, id=f"2699.{i:05d}", title=f"Revisited: {p.title}")
             for i, p in enumerate(stored.values())]
    batches = [fresh[i * args.batch:(i + 1) * args.batch] for i in range(3)]
    with QUESTIONS.open() as f:
        questions = [row[1] for row in csv.reader(f, delimiter="\t") if len(row) > 1]

    stop = threading.Event()
    answered, failed, latencies, per_generation = [0], [], [], {}

    def reader() -> None:
        i = 0
        while not stop.is_set():
            q = questions[i % len(questions)]
            i += 1
            t = time.perf_counter()
            try:
                searcher = engine.searcher()
                searcher.search(q, k=10)
                answered[0] += 1
                per_generation[searcher.index.generation.name] = (
                    per_generation.get(searcher.index.generation.name, 0) + 1)
            except Exception as e:  # noqa: BLE001 (every failure is counted and shown)
                failed.append(repr(e))
            latencies.append((time.perf_counter() - t) * 1000)

    thread = threading.Thread(target=reader)
    thread.start()
    updates = []
    try:
        time.sleep(5)
        for batch in batches:
            out = {}
            t = time.perf_counter()
            store.open_index(root, verify=True).close()  # what update does first
            out["open_verify_s"] = time.perf_counter() - t
            path = args.workdir / f"batch-{len(updates)}.jsonl"
            path.write_text("".join(_jsonl(p) for p in batch), encoding="utf-8")
            t = time.perf_counter()
            report = update_index([path], root, SentenceTransformerEncoder())
            out["update_s"] = time.perf_counter() - t
            t = time.perf_counter()
            while batch[0].id not in {h.id for h in engine.searcher().search(batch[0].title, k=5)}:
                time.sleep(0.05)
            out["visible_after_s"] = time.perf_counter() - t
            out["added"] = report.added
            updates.append(out)
            time.sleep(3)
    finally:
        stop.set()
        thread.join()
    on_disk = sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))
    print(f"CURRENT check (one stat): {stat_us:.2f} us per request")
    for i, u in enumerate(updates, 1):
        print(f"update {i}: {u['added']} papers added in {u['update_s']:.1f} s, of which "
              f"about opening + verifying the served generation {u['open_verify_s']:.1f} s; "
              f"searchable in the running engine {u['visible_after_s'] * 1000:.0f} ms after")
    lat = sorted(latencies)
    print(f"reader: {answered[0]} queries answered, {len(failed)} failed "
          f"({failed[:3]}); p50 {statistics.median(lat):.1f} ms, "
          f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms; switches {engine.switches}")
    print(f"answered per generation: {per_generation}")
    print(f"generations on disk at the end: {on_disk} (served: {engine.generation.name})")


def _jsonl(p: Paper) -> str:
    import json

    return json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract,
                       "authors": list(p.authors), "categories": list(p.categories),
                       "published": p.published}) + "\n"


if __name__ == "__main__":
    main()
