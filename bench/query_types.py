"""Per query type: does fusion keep each retriever's strength? (80k arXiv index)

Two query sets on the same index, each with one known target paper per query:
  known-item  keyword-rich: a paper's coined name from its title (GradSkip, HRVMamba, ...)
              plus its two longest other title words; made automatically (seeded);
  paraphrase  plain-language questions written by hand (bench/queries/paraphrase.tsv)
              that avoid the words of the paper's title.
Reports MRR@10 and Recall@10 for dense, bm25 and hybrid, and the share of each
paraphrase's content words (stemmed) that also occur in its paper's title or abstract.

Usage: python bench/query_types.py --index DIR [--n 200]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import lexical  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from search import Searcher  # noqa: E402
from search.evaluate import mrr_at, recall_at  # noqa: E402

_COINED = re.compile(r"^(?=.*[A-Z].*[A-Z]|.*\d)[A-Za-z][\w\-]{3,}$")


def known_item(papers, n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    picked = []
    for p in rng.sample(papers, len(papers)):
        words = re.findall(r"[\w\-]+", p.title)
        coined = [w for w in words if _COINED.match(w) and not w.isupper() or
                  (w.isupper() and len(w) >= 4)]
        rest = sorted((w.lower() for w in words if w not in coined and len(w) > 3),
                      key=len, reverse=True)
        if coined and len(rest) >= 2:
            picked.append((p.id, f"{coined[0]} {rest[0]} {rest[1]}"))
        if len(picked) == n:
            break
    return picked


def paraphrases() -> list[tuple[str, str]]:
    lines = (ROOT / "bench" / "queries" / "paraphrase.tsv").read_text().splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


def overlap(query: str, title: str, abstract: str) -> float:
    q = set(lexical.tokenize([query])[0])
    doc = set(lexical.tokenize([f"{title} {abstract}"])[0])
    return len(q & doc) / len(q) if q else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--alias-prefix", default="",
                        help="ids with this prefix are copies of another paper (bench/update_80k.py "
                             "adds 'new-' copies): count them as that paper")
    args = parser.parse_args()
    searcher = Searcher(args.index, SentenceTransformerEncoder(precision="float32"), floor=0.0)
    papers = [p for p in searcher.index.papers.all_papers()
              if not (args.alias_prefix and p.id.startswith(args.alias_prefix))]
    sets = {"known-item": known_item(papers, args.n), "paraphrase": paraphrases()}
    by_id = {p.id: p for p in papers}
    para = [overlap(q, by_id[i].title, by_id[i].abstract) for i, q in sets["paraphrase"]
            if i in by_id]
    print(f"paraphrase queries: mean share of content words found in the paper "
          f"{sum(para) / len(para):.2f}")
    print("| query set | queries | mode | MRR@10 | Recall@10 |\n|---|---|---|---|---|")
    for name, queries in sets.items():
        queries = [(i, q) for i, q in queries if i in by_id]
        for mode in ("dense", "bm25", "hybrid"):
            mrr = rec = 0.0
            for paper_id, q in queries:
                ranked = [h.id.removeprefix(args.alias_prefix) if args.alias_prefix else h.id
                          for h in searcher.search(q, k=20, mode=mode)]
                ranked = list(dict.fromkeys(ranked))[:10]
                mrr += mrr_at(ranked, {paper_id: 1})
                rec += recall_at(ranked, {paper_id: 1}, 10)
            print(f"| {name} | {len(queries)} | {mode} | {mrr / len(queries):.3f} | "
                  f"{rec / len(queries):.3f} |")


if __name__ == "__main__":
    main()
