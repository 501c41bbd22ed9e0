"""Encoding throughput: papersift's encoder against plain SentenceTransformer.encode.

Same texts (title + ". " + abstract of N real papers from the 80k set), same process,
one after the other: (a) `SentenceTransformer(path).encode(texts)` with default settings,
(b) papersift's `encode_papers` as a build runs it (OpenVINO, bfloat16 where the CPU has
native bf16), (c) the same on torch (bf16 autocast, batch 16), (d) torch in float32.
Reports papers/s and each one's agreement with (a) (cosine per paper, minimum and mean).

Usage: python bench/encode_speed.py [--n 5000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.build import encode_papers  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder, resolve_model  # noqa: E402
from indexer.records import paper_from_dict  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "arxiv-80k" / "papers.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    papers = [paper_from_dict(json.loads(x)) for x in random.Random(1).sample(lines, args.n)]
    texts = [p.text for p in papers]

    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(resolve_model(None)[1], device="cpu")
    plain.encode(texts[:64])  # warm-up, as for the others
    started = time.perf_counter()
    base = plain.encode(texts, normalize_embeddings=True)
    t_plain = time.perf_counter() - started
    result = {"papers": args.n, "plain_papers_per_s": round(args.n / t_plain, 1)}
    for precision, backend in (("auto", "auto"), ("auto", "torch"), ("float32", "torch")):
        enc = SentenceTransformerEncoder(precision=precision, backend=backend)
        enc.encode(texts[:64])  # warm-up (and, for OpenVINO, the one-off conversion)
        precision = f"{precision}_{backend}"
        started = time.perf_counter()
        ours = encode_papers(papers, enc)
        took = time.perf_counter() - started
        cos = np.sum(ours * base, axis=1)
        result[f"ours_{precision}_papers_per_s"] = round(args.n / took, 1)
        result[f"ours_{precision}_speedup"] = round(t_plain / took, 2)
        result[f"ours_{precision}_cosine_min_mean"] = [round(float(cos.min()), 5),
                                                        round(float(cos.mean()), 6)]
        result[f"ours_{precision}_backend"] = enc.backend_in_use
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
