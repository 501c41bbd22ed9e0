"""Adapting the model to the corpus without labels: measured before `papersift tune` exists.

Issue 11 asks for `papersift tune` (fine-tune the index's model on its own papers, title <->
abstract pairs, in-batch negatives: sentence-transformers' MultipleNegativesRankingLoss)
and to keep it only if it lifts the plain-language questions without hurting SciFact.
This script measures that on two corpora, each tuned on its own papers only:

- SciFact: the 5,183-document corpus; nDCG@10 of the dense side on the test claims.
- an 80k slice: the papers the plain-language questions (bench/queries/paraphrase_80k.tsv)
  were written for, plus random distractors from the 80k set; MRR@10 of the dense side.
  The questions are never seen in tuning (it uses the papers' own text only).

The loss is MNRL written out (cosine x 20, cross-entropy over the batch), one epoch, AdamW,
so no `datasets`/`accelerate` dependency is needed. CPU times are wall seconds on this
machine; CUDA is used when present.

Usage: python bench/tune.py [--distractors 4000] [--epochs 1] [--batch 32] [--max-len 256]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from indexer.readers import read_papers  # noqa: E402
from indexer.records import Paper  # noqa: E402
from search.evaluate import read_qrels, read_queries, score_run  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def encode(model, texts, batch=64) -> np.ndarray:
    order = np.argsort([-len(t) for t in texts])
    out = np.empty((len(texts), model.get_embedding_dimension()), np.float32)
    for s in range(0, len(texts), batch):
        rows = order[s:s + batch]
        out[rows] = model.encode([texts[i] for i in rows], batch_size=batch,
                                 normalize_embeddings=True, convert_to_numpy=True)
    return out


def tune(model, papers: list[Paper], epochs: int, batch: int, max_len: int, seed: int = 0):
    """MNRL on (title, abstract) pairs: each title must pick its own abstract in the batch."""
    import torch

    torch.manual_seed(seed)
    model.max_seq_length = max_len
    pairs = [(p.title, p.abstract) for p in papers if p.title and p.abstract]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    rng = np.random.default_rng(seed)
    model.train()
    steps = 0
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        for s in range(0, len(order) - batch + 1, batch):
            chunk = [pairs[i] for i in order[s:s + batch]]
            prepare = getattr(model, "preprocess", None) or model.tokenize
            feats = [prepare([c[k] for c in chunk]) for k in (0, 1)]
            feats = [{k: v.to(model.device) if hasattr(v, "to") else v for k, v in f.items()}
                     for f in feats]
            a, b = (torch.nn.functional.normalize(model(f)["sentence_embedding"], dim=-1)
                    for f in feats)
            logits = torch.cat([a @ b.T, b @ a.T]) * 20.0  # both directions
            labels = torch.arange(len(chunk), device=model.device).repeat(2)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
    model.eval()
    model.max_seq_length = 256
    return steps


def mrr_at_10(vectors, qvecs, targets) -> float:
    scores = qvecs @ vectors.T
    total = 0.0
    for i, t in enumerate(targets):
        top = np.argsort(-scores[i])[:10]
        hit = np.flatnonzero(top == t)
        total += 1.0 / (hit[0] + 1) if len(hit) else 0.0
    return total / len(targets)


def scifact(model, args) -> dict:
    beir = SHARED / "scifact"
    papers = [p for p in read_papers(beir / "corpus.jsonl") if isinstance(p, Paper)]
    queries = read_queries(beir / "queries.jsonl")
    qrels = read_qrels(beir / "qrels" / "test.tsv")
    qids = [q for q in qrels if q in queries]

    def ndcg() -> float:
        docs = encode(model, [p.text for p in papers])
        qv = encode(model, [queries[q] for q in qids])
        scores = qv @ docs.T
        run = {q: [papers[r].id for r in np.argsort(-scores[i])[:100]] for i, q in enumerate(qids)}
        return score_run(run, {q: qrels[q] for q in qids})["ndcg@10"]

    t = time.perf_counter()
    before = ndcg()
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    steps = tune(model, papers, args.epochs, args.batch, args.max_len)
    tune_s = time.perf_counter() - t
    after = ndcg()
    return {"corpus": "SciFact", "papers": len(papers), "before": before, "after": after,
            "tune_s": tune_s, "steps": steps, "encode_s": encode_s}


def slice_80k(model, args) -> dict:
    with (ROOT / "bench" / "queries" / "paraphrase_80k.tsv").open() as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    wanted = {r[0] for r in rows}
    papers = [p for p in read_papers(SHARED / "arxiv-80k" / "papers.jsonl.gz")
              if isinstance(p, Paper)]
    rng = np.random.default_rng(5)
    targets = [p for p in papers if p.id in wanted]
    others = [papers[i] for i in rng.choice(len(papers), args.distractors, replace=False)
              if papers[i].id not in wanted]
    corpus = targets + others
    row_of = {p.id: i for i, p in enumerate(corpus)}
    questions = [(r[1], row_of[r[0]]) for r in rows if r[0] in row_of]

    def mrr() -> float:
        docs = encode(model, [p.text for p in corpus])
        qv = encode(model, [q for q, _ in questions])
        return mrr_at_10(docs, qv, [t for _, t in questions])

    before = mrr()
    t = time.perf_counter()
    steps = tune(model, corpus, args.epochs, args.batch, args.max_len)
    tune_s = time.perf_counter() - t
    after = mrr()
    return {"corpus": f"80k slice ({len(targets)} targets + {len(others)} distractors)",
            "papers": len(corpus), "questions": len(questions), "before": before,
            "after": after, "tune_s": tune_s, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distractors", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--only", choices=("scifact", "80k"))
    args = parser.parse_args()
    for name, run in (("scifact", scifact), ("80k", slice_80k)):
        if args.only and args.only != name:
            continue
        model = SentenceTransformerEncoder(precision="float32").model  # fresh weights each
        result = run(model, args)
        print(result, flush=True)


if __name__ == "__main__":
    main()
