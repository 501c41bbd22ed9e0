"""Retrieval evaluation on BEIR folders: reading queries and qrels, and the metrics.

nDCG@10 (graded gains, log2 discount), Recall@10, Recall@100 and MRR@10, as BEIR and
pytrec_eval define them, averaged over queries that have at least one judged document.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from indexer.errors import PapersiftError

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def read_queries(path: Path) -> dict[str, str]:
    """`queries.jsonl`: one {"_id", "text"} object per line."""
    queries = {}
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                queries[str(obj["_id"])] = str(obj["text"])
            except (ValueError, KeyError, TypeError) as e:
                raise PapersiftError(f"{path}:{number}: not a BEIR query ({e})") from None
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """`qrels/SPLIT.tsv`: query-id, corpus-id, score; a header line is optional."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            row = [c.strip() for c in row]
            if not row or not any(row):
                continue
            if number == 1 and len(row) >= 3 and not row[2].lstrip("-").isdigit():
                continue  # header
            if len(row) < 3 or not row[2].lstrip("-").isdigit():
                raise PapersiftError(f"{path}:{number}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k], start=1):
        if relevant.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def score_run(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
              ) -> dict[str, float]:
    """Mean of each metric over the judged queries (a query missing from `run` scores 0)."""
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise PapersiftError("no judged queries")
    totals = dict.fromkeys(METRICS, 0.0)
    for q in judged:
        ranked, rel = run.get(q, []), qrels[q]
        totals["ndcg@10"] += ndcg_at(ranked, rel, 10)
        totals["recall@10"] += recall_at(ranked, rel, 10)
        totals["recall@100"] += recall_at(ranked, rel, 100)
        totals["mrr@10"] += mrr_at(ranked, rel, 10)
    return {m: v / len(judged) for m, v in totals.items()}


def _corpus_key(corpus: Path, model_fingerprint: str) -> str:
    import hashlib

    from indexer import lexical
    from indexer.store import SCHEMA_VERSION

    digest = hashlib.sha256()
    with corpus.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    settings = json.dumps([SCHEMA_VERSION, model_fingerprint, lexical.SETTINGS], sort_keys=True)
    digest.update(settings.encode())
    return digest.hexdigest()[:20]


def evaluate_beir(
    folder: Path,
    split: str,
    modes: Sequence[str],
    encoder,
    cache_root: Path,
    build_encoder=None,
    on_build=None,
) -> dict[str, dict[str, float]]:
    """Build (or reuse from the cache) an index of a BEIR corpus and score each mode.

    Returns:
        {mode: {metric: value, ..., "p50_ms": median query time, "queries": n}}.
    """
    import time

    from indexer.build import build_index
    from search.searcher import Searcher

    folder = Path(folder)
    corpus, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (corpus, queries_path, qrels_path):
        if not path.is_file():
            raise PapersiftError(f"{path}: missing (a BEIR folder has corpus.jsonl, "
                                 f"queries.jsonl and qrels/{split}.tsv)")
    queries, qrels = read_queries(queries_path), read_qrels(qrels_path)
    index = Path(cache_root) / _corpus_key(corpus, encoder.fingerprint)
    if not (index / "CURRENT").exists():
        if on_build:
            on_build(index)
        build_index([corpus], index, build_encoder or encoder)
    searcher = Searcher(index, encoder, floor=0.0)  # ranking quality to depth 100: no floor
    judged = [q for q in qrels if q in queries]
    results = {}
    for mode in modes:
        run, took = {}, []
        for q in judged:
            started = time.perf_counter()
            hits = searcher.search(queries[q], k=100, mode=mode)
            took.append((time.perf_counter() - started) * 1000)
            run[q] = [h.id for h in hits]
        metrics = score_run(run, {q: qrels[q] for q in judged})
        results[mode] = {**metrics, "p50_ms": sorted(took)[len(took) // 2], "queries": len(judged)}
    return results
