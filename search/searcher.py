"""The `Searcher`: opens an index read-only and answers `search` and `similar`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.encoder import Encoder
from indexer.errors import InvalidQuery, UnknownPaper
from indexer.records import Paper, canonical_id
from indexer.store import IndexHandle, ModelInfo, open_index

MAX_K = 1000
SORTS = ("relevance", "newest", "upvotes")
SORT_POOL = 100  # "newest" and "upvotes" reorder the 100 (or k) most relevant papers


@dataclass(frozen=True)
class Filters:
    """Restrictions applied inside retrieval. Dates are YYYY-MM-DD, inclusive."""

    since: str = ""
    until: str = ""
    categories: tuple[str, ...] = ()
    author: str = ""

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.categories or self.author.strip())


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    rank: int
    score: float
    paper: Paper

    @property
    def id(self) -> str:
        return self.paper.id

    def to_dict(self) -> dict[str, Any]:
        p = self.paper
        return {
            "rank": self.rank,
            "id": p.id,
            "score": round(self.score, 4),
            "title": p.title,
            "authors": list(p.authors),
            "published": p.published,
            "categories": list(p.categories),
            "url": p.url,
        }


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidQuery(f"k must be between 1 and {MAX_K}, got {k}")


def check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise InvalidQuery(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")


class Searcher:
    """Nearest-neighbour search over one index generation.

    Args:
        root: the index folder.
        encoder: encodes queries; it must be the model the index was built with. None
            opens the index for `similar` and lookups only.
    """

    def __init__(self, root: str | Path, encoder: Encoder | None = None) -> None:
        self.encoder = encoder
        self.index: IndexHandle = open_index(
            Path(root), ModelInfo.of(encoder) if encoder is not None else None
        )
        # Measured: single queries are faster on one OpenMP thread than on two here.
        faiss.omp_set_num_threads(1)
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self.index.count

    @cached_property
    def categories(self) -> list[tuple[str, int]]:
        """Every category in the index with its paper count, most common first."""
        return self.index.papers.categories()

    def paper(self, paper_id: str) -> Paper:
        """The stored paper with this id (an arXiv URL or versioned id is accepted)."""
        row = self._row(paper_id)
        return self.index.papers.papers([row])[row]

    def search(
        self, query: str, k: int = 10, filters: Filters | None = None, sort: str = "relevance"
    ) -> list[Hit]:
        """Papers nearest to a natural-language query, best first (or by `sort`)."""
        check_k(k)
        check_sort(sort)
        query = " ".join(query.split()) if isinstance(query, str) else ""
        if not query:
            raise InvalidQuery("empty query")
        if self.encoder is None:
            raise InvalidQuery("this searcher was opened without a model; it cannot encode")
        vector = self.encoder.encode([query])[0]
        return self._sorted(vector, k, filters, sort)

    def similar(
        self, paper_id: str, k: int = 10, filters: Filters | None = None, sort: str = "relevance"
    ) -> list[Hit]:
        """Papers nearest to a stored paper's own vector, the paper itself excluded."""
        check_k(k)
        check_sort(sort)
        row = self._row(paper_id)
        vector = np.asarray(self.index.vectors[row], dtype=np.float32)
        return self._sorted(vector, k, filters, sort, exclude_row=row)

    def _sorted(self, vector, k, filters, sort, exclude_row=None) -> list[Hit]:
        if sort == "relevance":
            return self.search_vector(vector, k, filters, exclude_row=exclude_row)
        pool = self.search_vector(vector, max(k, SORT_POOL), filters, exclude_row=exclude_row)
        if sort == "newest":
            pool.sort(key=lambda h: (h.paper.published, h.score), reverse=True)
        else:
            pool.sort(key=lambda h: (h.paper.upvotes or 0, h.score), reverse=True)
        return [Hit(rank=i, score=h.score, paper=h.paper) for i, h in enumerate(pool[:k], start=1)]

    def search_vector(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters | None = None,
        exclude_row: int | None = None,
    ) -> list[Hit]:
        """Rank the index by inner product with `vector`, filters applied inside retrieval."""
        check_k(k)
        params = None
        limit = self.count
        if filters is not None and filters.active:
            allowed = self.index.papers.rows_matching(
                filters.since, filters.until, filters.categories, filters.author.strip()
            )
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
            limit = len(allowed)
        wanted = min(k + (exclude_row is not None), limit)
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            scores, rows = self.index.faiss_index.search(query, wanted, params=params)
        ranked = [
            (int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0 and r != exclude_row
        ][:k]
        papers = self.index.papers.papers([r for r, _ in ranked])
        return [
            Hit(rank=i, score=s, paper=papers[r]) for i, (r, s) in enumerate(ranked, start=1)
        ]

    def _row(self, paper_id: str) -> int:
        if not isinstance(paper_id, str) or not paper_id.strip():
            raise InvalidQuery("empty paper id")
        row = self.index.papers.row_of(canonical_id(paper_id))
        if row is None:
            raise UnknownPaper(f"unknown paper id {paper_id!r} in index {self.index.root}")
        return row
