"""Scale: query latency, recall, open time and memory at 1M+ vectors, against bare FAISS.

Synthetic clustered unit vectors of dimension 384 (seeded) stand in for a large corpus;
each gets a small metadata row. Ours end to end = query text -> packaged MiniLM encode ->
papersift Searcher (the generation's chosen index, recall-guarded) -> hits with metadata.
The baseline is a bare FAISS IndexFlatIP search of an already-encoded query on the same
vectors. Recall@10 of ours is measured against exact search for held-out perturbed vectors.
Open time and peak RSS (VmHWM: ru_maxrss would carry the parent's over exec) are measured
in a fresh process that opens the index and answers one query.

Usage: python bench/scale.py --n 1000000 [--float16] [--workdir /tmp/papersift-scale]
       python bench/scale.py --real INDEX   (real vectors and query texts, e.g. the 80k set)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.records import Paper  # noqa: E402
from indexer.store import ModelInfo, open_index, write_generation, writer_lock  # noqa: E402

DIM = 384


def clustered(n: int, seed: int = 0, centers: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = c[rng.integers(0, centers, m)] + 0.6 * rng.standard_normal((m, DIM)).astype(
            np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def build(root: Path, n: int, float16: bool, fingerprint: str) -> float:
    vectors = clustered(n)
    papers = [Paper(id=f"syn-{i}", title=f"synthetic paper {i}", abstract="",
                    published=f"20{10 + i % 16}-0{1 + i % 9}-01", categories=("cs.LG",))
              for i in range(n)]
    started = time.perf_counter()
    with writer_lock(root):
        write_generation(root, papers, vectors, ModelInfo(
            "sentence-transformers/all-MiniLM-L6-v2", fingerprint, DIM), float16=float16,
            with_lexical=False)
    return time.perf_counter() - started


OPEN_PROBE = """
import json, sys, time
t = time.perf_counter()
from search import Searcher
s = Searcher(sys.argv[1])
s.similar(s.index.papers.papers([0])[0].id, k=10)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"open_s": time.perf_counter() - t, "rss_mib": int(hwm.split()[1]) / 1024}))
"""


def real_queries(handle, n: int) -> list[str]:
    """Hand-written plain-language questions for papers the index holds (bench/queries:
    paraphrase_80k.tsv, paraphrase.tsv) plus titles of random papers, n in all."""
    texts = []
    for name in ("paraphrase_80k.tsv", "paraphrase.tsv"):
        for line in (ROOT / "bench" / "queries" / name).read_text().splitlines():
            if line and not line.startswith("#"):
                paper, question = line.split("\t", 1)
                if handle.papers.row_of(paper) is not None:
                    texts.append(question)
    rng = np.random.default_rng(11)
    rows = rng.choice(handle.count, max(0, n - len(texts)), replace=False)
    texts += [p.title for p in handle.papers.papers(rows).values()]
    return texts[:n]


def copy_as(source, root: Path, index_type: str) -> float:
    """Write the source index's papers and vectors again with a forced FAISS index type."""
    papers = source.papers.all_papers()
    model = source.model
    started = time.perf_counter()
    with writer_lock(root):
        write_generation(root, papers, np.asarray(source.vectors, dtype=np.float32),
                         ModelInfo(model.name, model.fingerprint, model.dim),
                         index_type=index_type, with_lexical=False)
    return time.perf_counter() - started


def measure(root: Path, encoder, query_vectors: np.ndarray, texts: list[str]) -> dict:
    """Open time/RSS (fresh process), recall@10 against exact search, ours end to end
    against bare FAISS flat: one row of the table."""
    import faiss

    from search import Searcher

    result: dict = {}
    probe = subprocess.run([sys.executable, "-c", OPEN_PROBE, str(root)], capture_output=True,
                           text=True, cwd=ROOT, check=True)
    result.update({k: round(v, 2) for k, v in json.loads(probe.stdout).items()})
    handle = open_index(root)
    n = handle.count
    result["n"] = n
    result["index"] = handle.manifest["faiss"]
    result["vector_bytes_per_paper"] = round(handle.manifest["files"]["faiss.index"]["size"] / n)
    from indexer.query_encoder import query_encoder

    searcher = Searcher(root, query_encoder(None))  # what the CLI, app and API encode with
    vectors = np.asarray(handle.vectors, dtype=np.float32)
    faiss.omp_set_num_threads(1)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    bare, truth = [], []
    for q in query_vectors:
        t = time.perf_counter()
        _, ids = exact.search(q.reshape(1, -1), 10)
        bare.append((time.perf_counter() - t) * 1000)
        truth.append(set(ids[0]))
    found = [{handle.papers.row_of(h.id) for h in searcher.search_vector(q, 10)}
             for q in query_vectors]
    result["recall_at_10"] = round(float(np.mean([len(a & b) / 10 for a, b in
                                                  zip(truth, found, strict=True)])), 4)
    timings = {"bare_faiss_flat_ms": bare}
    modes = ("dense", "hybrid") if handle.lexical is not None else ("dense",)
    for mode in modes:
        searcher.search(texts[0], 10, mode=mode)  # first use may load a cache
        ours = timings[f"ours_end_to_end_{mode}_ms"] = []
        for text in texts:
            t = time.perf_counter()
            searcher.search(text, 10, mode=mode)
            ours.append((time.perf_counter() - t) * 1000)
    for name, xs in timings.items():
        xs = sorted(xs)
        result[name] = {"p50": round(xs[len(xs) // 2], 2), "p99": round(xs[int(len(xs) * 0.99)], 2)}
    for mode in modes:
        result[f"filtered_{mode}"] = measure_filters(handle, searcher, vectors, query_vectors,
                                                     texts, mode)
    return result


FILTERS = {"since 2024-01-01": {"since": "2024-01-01"},
           "until 2010-12-31": {"until": "2010-12-31"},
           "since 2012-01-01": {"since": "2012-01-01"},
           "category cs.CL": {"categories": ("cs.CL",)},
           "category math.PR": {"categories": ("math.PR",)}}


def _author_filters(handle) -> dict:
    """Two author filters by name: a prolific author's and a one-paper author's."""
    from collections import Counter

    counts = Counter(a for p in handle.papers.papers(range(0, handle.count, 97)).values()
                     for a in p.authors)
    common = counts.most_common(1)[0][0] if counts else "Wei Li"
    rare = next((a for a, c in counts.items() if c == 1), common)
    return {f"author {common!r} (common)": {"author": common},
            f"author {rare!r} (rare)": {"author": rare}}


def measure_filters(handle, searcher, vectors, query_vectors, texts, mode: str = "dense") -> dict:
    """Per filter: share of papers kept, p50/p99 end to end (after a warm-up query),
    recall@10 against exact search over exactly the kept rows."""
    from search import Filters

    out = {}
    for name, kw in {**FILTERS, **_author_filters(handle)}.items():
        filters = Filters(**kw)
        keep = searcher.allowed_rows(filters)
        if len(keep) == 0:
            continue
        searcher.search(texts[0], 10, filters, mode=mode)  # first use may load a cache
        times = []
        for text in texts:
            t = time.perf_counter()
            searcher.search(text, 10, filters, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        sub = vectors[keep]
        recall = []
        for q in query_vectors[:50]:
            truth = set(keep[np.argsort(-(sub @ q))[:10]].tolist())
            found = {handle.papers.row_of(h.id) for h in searcher.search_vector(q, 10, filters)}
            recall.append(len(truth & found) / 10)
        out[name] = {"kept": round(len(keep) / handle.count, 3),
                     "p50": round(times[len(times) // 2], 2),
                     "p99": round(times[int(len(times) * 0.99)], 2),
                     "recall_at_10": round(float(np.mean(recall)), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--float16", action="store_true")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real", type=Path, metavar="INDEX",
                        help="measure an existing index of real papers (as built, and copied "
                             "with a forced IVF index) with real query texts instead")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersift-scale"))
    parser.add_argument("--as-built", action="store_true",
                        help="with --real: measure the index as built only (no forced IVF copy)")
    args = parser.parse_args()
    from indexer.encoder import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(precision="float32")
    rows = []
    if args.real:
        source = open_index(args.real)
        texts = real_queries(source, args.queries)
        query_vectors = encoder.encode(texts)
        rows.append(measure(args.real, encoder, query_vectors, texts))
        if args.as_built:
            print(json.dumps(rows, indent=2))
            return
        ivf = args.workdir / f"real-ivf-{source.count}"
        built = None if (ivf / "CURRENT").exists() else copy_as(source, ivf, "ivf")
        rows.append(measure(ivf, encoder, query_vectors, texts))
        if built:
            rows[-1]["build_s"] = round(built, 1)
    else:
        root = args.workdir / f"n{args.n}{'-f16' if args.float16 else ''}"
        built = None
        if not (root / "CURRENT").exists():
            built = build(root, args.n, args.float16, encoder.fingerprint)
        vectors = np.asarray(open_index(root).vectors, dtype=np.float32)
        rng = np.random.default_rng(7)
        picks = rng.choice(len(vectors), args.queries, replace=False)
        noisy = vectors[picks] + 0.05 * rng.standard_normal((args.queries, DIM)).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        del vectors
        texts = [f"synthetic query number {i} about sparse attention" for i in range(args.queries)]
        rows.append(measure(root, encoder, noisy, texts))
        rows[-1]["float16"] = args.float16
        if built:
            rows[-1]["build_s"] = round(built, 1)
    rows[-1]["bench_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
