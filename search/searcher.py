"""The `Searcher`: opens an index read-only and answers `search` and `similar`."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer import ann, lexical, windows
from indexer.encoder import DEFAULT_MODEL, Encoder
from indexer.errors import IndexCorrupt, InvalidQuery, UnknownPaper
from indexer.records import Paper, canonical_id, parse_date
from indexer.store import MAP_DIR, IndexHandle, ModelInfo, name_parts, open_index, read_atlas
from search import hybrid, spelling
from search.hybrid import (
    DEFAULT_FUSION,
    MODES,
    RELEVANCE_FLOOR,
    Floor,
    Fusion,
    best_first,
    fuse,
    top_rows,
)
from search.recommend import DEFAULT_METHOD, METHODS, background_rows, rocchio, svm

MAX_K = 1000
SORTS = ("relevance", "newest", "upvotes")
BROWSE_ORDERS = ("newest", "trending")
TRENDING_DAYS = 7
SORT_POOL = 100  # "newest" and "upvotes" reorder the 100 (or k) most relevant papers
# `similar` and recommendations: the BM25 side queries with the seed papers' most
# distinctive terms (TF-IDF), fused with the dense side at a fixed weight chosen on
# related-work judgments (bench/related.py).
SEED_TERMS = 32
RELATED_DENSE_WEIGHT = 0.5
# A spelling correction is taken when the corrected query's best cosine (or best BM25
# share) beats the typed one's by this margin, or when only the corrected query has close
# matches; never when its best cosine is more than CORRECTION_MARGIN lower. Each side is
# compared on its own fixed scale, not through the per-query fused score.
CORRECTION_MARGIN = 0.03
BM25_CORRECTION_MARGIN = 0.1  # the same in BM25 share (unknown words count in its ceiling)
# A filter keeping at most this many papers is answered by exact inner products over them
# (about 3 ms at dimension 384); larger sets go through the FAISS index with a bitmap.
EXACT_AMONG = 20_000
AUTHOR_CACHE_BYTES = 64 << 20  # the author filters' rows kept (a single name: a few KB)
TIE_SLACK = 8  # extra nearest neighbours asked of FAISS, so ties at the cut are seen
_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Filters:
    """Restrictions applied inside retrieval. Dates are YYYY-MM-DD, inclusive."""

    since: str = ""
    until: str = ""
    categories: tuple[str, ...] = ()
    author: str = ""

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                try:
                    parse_date(value)
                except ValueError as e:
                    raise InvalidQuery(f"{name}: {e}", name) from None
        if self.since and self.until and self.since > self.until:
            raise InvalidQuery(f"since {self.since} is after until {self.until}: no paper can "
                               "match", "since")
        if self.author.strip() and not name_parts(self.author):
            raise InvalidQuery(f"author {self.author.strip()[:60]!r} has no letters of a name",
                               "author")

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.categories or self.author.strip())


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    rank: int
    score: float
    paper: Paper
    sources: dict[str, int] = field(default_factory=dict, compare=False)

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
            "sources": dict(self.sources),
        }


@dataclass(frozen=True)
class Results:
    """What a search found.

    hits: the close matches, best first (or by the sort).
    query: the query as searched: the corrected one when a correction was taken.
    typed: the query as typed.
    corrected: True when `query` is a spelling correction of `typed`.
    floor: the relevance floor applied, or None.
    below_floor: candidates left out as not close; with no hits and some left out, there
        were "no close matches".
    best_dense, best_bm25: the best cosine and BM25 share of any candidate (a typed and a
        corrected query are compared by them).
    """

    hits: list[Hit]
    query: str
    typed: str
    corrected: bool = False
    floor: Floor | None = None
    below_floor: int = 0
    best_dense: float = float("-inf")
    best_bm25: float = 0.0
    sharded: bool = False
    missing: tuple[str, ...] = ()

    @property
    def no_close_matches(self) -> bool:
        return not self.hits and self.below_floor > 0

    def to_dict(self, took_ms: float | None = None) -> dict[str, Any]:
        """The answer as `search --queries --json`, the HTTP API and the MCP tools give it;
        from shards (search/sharded.py) also whether some shards did not answer."""
        answer = {"query": self.typed,
                  "took_ms": None if took_ms is None else round(took_ms, 2),
                  "corrected": self.query if self.corrected else None,
                  "no_close_matches": self.no_close_matches,
                  "hits": [h.to_dict() for h in self.hits]}
        if self.sharded:
            answer.update(partial=bool(self.missing), missing_shards=list(self.missing))
        return answer


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidQuery(f"k must be between 1 and {MAX_K}, got {k}")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InvalidQuery(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def check_sort(sort: str) -> None:
    if sort not in SORTS:
        raise InvalidQuery(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")


class Searcher:
    """Nearest-neighbour search over one index generation.

    Args:
        root: the index folder.
        encoder: encodes queries; it must be the model the index was built with. None
            opens the index for `similar` and lookups only.
        fusion: how hybrid search combines its two sides (search/hybrid.py).
        floor: a paper is a close match when its cosine or its BM25 share reaches the
            floor (`search.hybrid.Floor`); others are left out ("no close matches"). None:
            the floor measured for the default model (`RELEVANCE_FLOOR`) on an index of
            that model, none for other models, whose cosines sit on other scales; a
            number: that floor on both sides; 0: no floor (every candidate, as an
            evaluation to depth 100 needs).
        correct: whether `query` takes spelling corrections unless told otherwise.
    """

    def __init__(
        self, root: str | Path, encoder: Encoder | None = None, fusion: Fusion = DEFAULT_FUSION,
        floor: Floor | float | None = None, correct: bool = True,
    ) -> None:
        self.encoder = encoder
        self.fusion = fusion
        self.correct = correct
        self.index: IndexHandle = open_index(
            Path(root), ModelInfo.of(encoder) if encoder is not None else None
        )
        _one_omp_thread()
        if floor is None:
            floor = RELEVANCE_FLOOR if self.index.model.name == DEFAULT_MODEL else 0.0
        if not isinstance(floor, Floor):
            floor = Floor(float(floor), float(floor))
        self.floor: Floor | None = floor if floor.dense > 0 or floor.bm25 > 0 else None
        self._lock = threading.Lock()  # the category and author caches
        self._atlas: tuple[int, Any] | None = None
        self._categories: dict[str, np.ndarray] = {}
        self._authors: dict[str, np.ndarray] = {}

    @property
    def count(self) -> int:
        return self.index.count

    @cached_property
    def categories(self) -> list[tuple[str, int]]:
        """Every category in the index with its paper count, most common first."""
        return self.index.papers.categories()

    def atlas(self):
        """The generation's map (indexer.atlas.Atlas), or None before `papersift map`.

        Read again whenever the map folder changed, so a map computed while the app runs
        appears without a restart.
        """
        folder = self.index.generation / MAP_DIR
        try:
            stamp = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self._atlas is None or self._atlas[0] != stamp:
            self._atlas = (stamp, read_atlas(self.index.generation, self.count))
        return self._atlas[1]

    def filters(self, since: str = "", until: str = "", categories: Sequence[str] = (),
                author: str = "") -> Filters:
        """Filters from a front end's parameters, categories spelled as the index spells
        them (`cs.cl` is `cs.CL`). The API and the MCP tools build theirs here.

        Raises:
            InvalidQuery: with `field` set: a date that is not YYYY-MM-DD, since after
                until, a category no paper has (naming the closest), an author with no
                letters.
        """
        from indexer.records import match_categories

        filters = Filters(since.strip(), until.strip(), (), author)
        if not categories:
            return filters
        try:
            known = match_categories(categories, (c for c, _ in self.categories))
        except ValueError as e:
            raise InvalidQuery(f"category: {e}", "category") from None
        return replace(filters, categories=tuple(known))

    def rows_of(self, paper_ids: Sequence[str]) -> dict[str, int]:
        """Index rows of the ids that are in the index (unknown ids are left out)."""
        found = {}
        for pid in paper_ids:
            row = self.index.papers.row_of(canonical_id(pid)) if isinstance(pid, str) else None
            if row is not None:
                found[pid] = row
        return found

    def paper(self, paper_id: str) -> Paper:
        """The stored paper with this id (an arXiv URL or versioned id is accepted)."""
        row = self._row(paper_id)
        return self.index.papers.papers([row])[row]

    def search(
        self,
        query: str,
        k: int = 10,
        filters: Filters | None = None,
        sort: str = "relevance",
        mode: str = "hybrid",
    ) -> list[Hit]:
        """Papers that answer a question, best first (or by `sort`), the words as given
        (no spelling correction); see `query`."""
        return self.query(query, k, filters, sort, mode, correct=False).hits

    def query(
        self,
        query: str,
        k: int = 10,
        filters: Filters | None = None,
        sort: str = "relevance",
        mode: str = "hybrid",
        correct: bool | None = None,
        floor: bool = True,
    ) -> Results:
        """Papers that answer a question, with what the search did to get them.

        Args:
            mode: "hybrid" (dense and BM25 fused with a per-query weight, the default),
                "dense" or "bm25". An index built without BM25 answers "hybrid" from the
                dense side alone.
            correct: take spelling corrections (None: as the searcher was opened).
            floor: leave out papers below the searcher's relevance floor (False: list the
                nearest papers whatever their scores).

        Only papers at or above the relevance floor are returned ("newest" and "upvotes"
        reorder those). A query word the index has never seen is checked against the
        index's own vocabulary; the corrected query is searched instead when it matches
        clearly better (`Results.corrected`).
        """
        check_k(k)
        check_sort(sort)
        check_mode(mode)
        typed = " ".join(query.split()) if isinstance(query, str) else ""
        if not typed:
            raise InvalidQuery("empty query")
        if mode == "bm25" and self.index.lexical is None:
            raise InvalidQuery(f"index {self.index.root} has no BM25 part; rebuild it for bm25")
        if mode != "bm25" and self.encoder is None:
            raise InvalidQuery("this searcher was opened without a model; it cannot encode")
        results = self._query(typed, typed, k, filters, sort, mode, floor)
        suggestion = self._suggest(typed) if (self.correct if correct is None else correct) else None
        if suggestion is not None:
            fixed = self._query(suggestion, typed, k, filters, sort, mode, floor)
            closer = (fixed.best_dense >= results.best_dense + CORRECTION_MARGIN
                      or fixed.best_bm25 >= results.best_bm25 + BM25_CORRECTION_MARGIN)
            # never a correction that moves the meaning away ("genome" -> "become")
            not_farther = mode == "bm25" or fixed.best_dense >= results.best_dense - CORRECTION_MARGIN
            if fixed.hits and not_farther and (closer or results.no_close_matches):
                return replace(fixed, corrected=True)
        return results

    def _suggest(self, text: str) -> str | None:
        if self.index.lexical is None:
            return None
        terms = lexical.query_terms(self.index.lexical, text)
        if not terms.unknown:
            return None
        retriever = self.index.lexical
        return spelling.correct(text, lexical.words(retriever),
                                known=lambda w: lexical.is_known(retriever, w))

    def _query(self, text, typed, k, filters, sort, mode, use_floor=True) -> Results:
        if mode == "bm25":
            vector = None
        elif mode == "hybrid" and self.index.lexical is not None:
            # encoded on the dense side's thread while this one scores BM25 (`candidates`)
            vector = _Encoding(self.encoder, text)
        else:
            vector = self.encoder.encode([text])[0]
        floor = self.floor if mode != "bm25" and use_floor else None
        hits, dropped, found = self._ranked(vector, text, k, filters, sort, mode,
                                            floor=floor, report=True)
        return Results(hits, text, typed, floor=floor, below_floor=dropped,
                       best_dense=found.best_dense, best_bm25=found.best_bm25)

    def similar(
        self, paper_id: str, k: int = 10, filters: Filters | None = None, sort: str = "relevance"
    ) -> list[Hit]:
        """Related work: papers on the same problem as a stored paper, itself excluded.

        The dense side ranks by the paper's own vector, the BM25 side by its most
        distinctive terms; the two are fused like a search. Needs no model.
        """
        check_k(k)
        check_sort(sort)
        row = self._row(paper_id)
        vector = np.asarray(self.index.vectors[row], dtype=np.float32)
        return self._ranked(vector, "", k, filters, sort, "related", exclude=(row,),
                            seeds=(row,))

    def recommend(
        self,
        like: Sequence[str],
        unlike: Sequence[str] = (),
        k: int = 10,
        filters: Filters | None = None,
        sort: str = "relevance",
        method: str = DEFAULT_METHOD,
    ) -> list[Hit]:
        """More papers like the liked ones and unlike the disliked ones (search/recommend.py).

        The given papers themselves are never returned.
        """
        check_k(k)
        check_sort(sort)
        if method not in METHODS:
            raise InvalidQuery(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not like:
            raise InvalidQuery("give at least one paper to like")
        like_rows = list(dict.fromkeys(self._row(p) for p in like))
        unlike_rows = list(dict.fromkeys(self._row(p) for p in unlike))
        if both := set(like_rows) & set(unlike_rows):
            ids = ", ".join(sorted(p.id for p in self.index.papers.papers(sorted(both)).values()))
            raise InvalidQuery(f"paper {ids} is both liked and unliked")
        liked = np.asarray(self.index.vectors[sorted(like_rows)], dtype=np.float32)
        disliked = np.asarray(self.index.vectors[sorted(unlike_rows)], dtype=np.float32)
        exclude = set(like_rows) | set(unlike_rows)
        if method == "svm":
            background = background_rows(self.count, exclude)
            direction = svm(liked, disliked, np.asarray(self.index.vectors[background], np.float32))
        else:
            direction = rocchio(liked, disliked)
        return self._ranked(direction, "", k, filters, sort, "related",
                            exclude=tuple(sorted(exclude)), seeds=tuple(like_rows))

    def search_vector(
        self, vector: np.ndarray, k: int, filters: Filters | None = None,
        exclude_row: int | None = None,
    ) -> list[Hit]:
        """Rank the index by inner product with `vector`, filters applied inside retrieval."""
        check_k(k)
        return self._ranked(vector, "", k, filters, "relevance", "dense",
                            exclude=() if exclude_row is None else (exclude_row,))

    def _ranked(self, vector, text, k, filters, sort, mode, exclude=(), seeds=(), floor=None,
                report=False):
        """The shared ranking path; `exclude`: rows never returned (the paper `similar`
        starts from, the papers a recommendation starts from); `seeds`: the papers whose
        text is the BM25 query of "related" mode; `floor`: a Floor leaving out candidates
        that are not close matches. With `report`, returns (hits, candidates left out,
        the `_Found` they came from)."""
        n = k if sort == "relevance" else max(k, SORT_POOL)
        seed_papers = list(self._papers(list(seeds)).values()) if mode == "related" else []
        found = fused(self._candidates(vector, text, n, filters, mode,
                                       np.asarray(exclude, dtype=np.int64), seed_papers),
                      n, self.fusion, text)
        rows, scores, sources = found.rows, found.scores, found.sources
        dropped = 0
        if floor is not None:
            close = (found.dense >= floor.dense) | (found.bm25 >= floor.bm25)
            dropped = int(np.count_nonzero(~close))
            rows, scores = rows[close], scores[close]
        papers = self._papers([int(r) for r in rows])
        hits = [Hit(rank=0, score=float(s), paper=papers[int(r)], sources=sources.get(int(r), {}))
                for r, s in zip(rows, scores, strict=True) if int(r) in papers]
        if sort == "newest":
            hits.sort(key=lambda h: (h.paper.published, h.score), reverse=True)
        elif sort == "upvotes":
            hits.sort(key=lambda h: (h.paper.upvotes or 0, h.score), reverse=True)
        hits = [replace(h, rank=i) for i, h in enumerate(hits[:k], start=1)]
        return (hits, dropped, found) if report else hits

    @cached_property
    def _upvotes(self) -> np.ndarray:
        return self.index.papers.upvote_counts()

    @cached_property
    def has_upvotes(self) -> bool:
        """Whether any paper carries an upvote count (Hugging Face Papers sources do)."""
        return bool(np.any(self._upvotes >= 0))

    @cached_property
    def date_range(self) -> tuple[str, str]:
        """The first and last publication dates in the index ('' when none is known)."""
        return self.index.papers.date_range()

    @cached_property
    def trending_since(self) -> str:
        """The first day of the trending window: 7 days up to the newest paper's date (or
        today, when a paper claims a later date)."""
        try:
            newest = min(parse_date(self.date_range[1]), datetime.date.today())
            return (newest - datetime.timedelta(days=TRENDING_DAYS - 1)).isoformat()
        except (ValueError, OverflowError):  # no dates; a date near year 1
            return ""

    def browse(self, filters: Filters | None = None, k: int = 100,
               order: str = "newest") -> list[Hit]:
        """The papers to show without a question: the newest passing the filters, or with
        `order="trending"` the most upvoted of the last 7 days of the index (up to its newest
        paper's date, as Hugging Face's daily list counts them). Scores are NaN: nothing
        was matched."""
        check_k(k)
        if order not in BROWSE_ORDERS:
            raise InvalidQuery(f"order must be one of {', '.join(BROWSE_ORDERS)}, got {order!r}")
        rows = (self.allowed_rows(filters) if filters is not None and filters.active
                else np.arange(self.count, dtype=np.int64))
        dates = self._dates[rows]
        if order == "trending":
            votes = self._upvotes[rows]
            start = int(self.trending_since.replace("-", "") or 0)
            today = int(datetime.date.today().strftime("%Y%m%d"))
            keep = (votes >= 0) & (dates >= start) & (dates <= today)
            rows, dates, votes = rows[keep], dates[keep], votes[keep]
            order_ = np.lexsort((-rows, -dates, -votes))  # most upvoted, then newest
        else:
            order_ = np.lexsort((-rows, -dates))  # newest, the last added first on a day
        picked = rows[order_[:k]]
        papers = self.index.papers.papers(picked.tolist())
        return [Hit(rank=i, score=float("nan"), paper=papers[int(r)])
                for i, r in enumerate(picked, start=1)]

    @cached_property
    def _dates(self) -> np.ndarray:
        return self.index.papers.published_dates()  # loaded on the first date filter

    def _category_rows(self, category: str) -> np.ndarray:
        with self._lock:
            rows = self._categories.get(category)
        if rows is None:
            rows = self.index.papers.category_rows(category)
            with self._lock:
                if len(self._categories) >= 256:
                    self._categories.clear()
                self._categories[category] = rows
        return rows

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        """Sorted int64 rows passing every filter, from arrays kept in memory: dates as
        YYYYMMDD integers (one comparison over all rows), one cached row set per category;
        only an author filter asks SQLite."""
        mask = np.ones(self.count, dtype=bool)
        if filters.since:
            mask &= self._dates >= int(filters.since.replace("-", ""))
        if filters.until:
            mask &= (self._dates > 0) & (self._dates <= int(filters.until.replace("-", "")))
        if filters.categories:
            in_any = np.zeros(self.count, dtype=bool)
            for category in filters.categories:
                in_any[self._category_rows(category)] = True
            mask &= in_any
        if filters.author.strip():
            by_author = np.zeros(self.count, dtype=bool)
            by_author[self._author_rows(filters.author.strip())] = True
            mask &= by_author
        return np.flatnonzero(mask).astype(np.int64)

    def _author_rows(self, author: str) -> np.ndarray:
        """An author filter's rows, kept for the next query (a researcher who filters by
        an author asks several questions): a common name's postings take tens of ms to
        read and intersect at 1M papers (docs/benchmarks.md)."""
        with self._lock:
            rows = self._authors.get(author)
        if rows is None:
            name, exact = exact_name(author)
            rows = self.index.papers.rows_matching(author=name)
            if exact:
                rows = self.index.papers.exact_author_rows(rows, name)
            with self._lock:
                if (len(self._authors) >= 256 or sum(r.nbytes for r in self._authors.values())
                        + rows.nbytes > AUTHOR_CACHE_BYTES):
                    self._authors.clear()
                self._authors[author] = rows
        return rows

    def _dense(self, vector, n, allowed, exclude) -> tuple[np.ndarray, np.ndarray]:
        _one_omp_thread()
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        wanted = n + len(exclude)
        info = self.index.manifest["faiss"]
        exact_index = info.get("exact", True)
        if allowed is not None and (len(allowed) <= EXACT_AMONG or (
                exact_index and len(allowed) <= self.count // 5)):
            return self._exact_among(query[0], allowed, n, exclude)
        params = None
        bitmap = None
        if allowed is not None:
            mask = np.zeros(self.count, dtype=bool)
            mask[allowed] = True
            bitmap = np.packbits(mask, bitorder="little")  # kept alive through the search
            selector = faiss.IDSelectorBitmap(self.count, faiss.swig_ptr(bitmap))
            if exact_index:
                params = faiss.SearchParameters(sel=selector)
            else:  # fewer allowed papers per probed cell: probe more cells, as many in all
                nprobe = int(info["nprobe"]) * self.count / len(allowed)
                nprobe = int(min(max(int(info["nprobe"]), nprobe), max(1, int(info["nlist"]) // 4)))
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        limit = self.count if allowed is None else len(allowed)
        # No lock: FAISS CPU indexes take concurrent searches (the parameters are per call)
        # and release the GIL, so requests of the HTTP API overlap here (bench/load.py).
        # A few more than wanted, re-sorted by score then row: papers tied at the n-th
        # score are then the same ones whatever order FAISS gave them in (shards agree).
        # An index with `refine` (8-bit codes) proposes that many times more papers and the
        # stored vectors score them (indexer/ann.py).
        refine = int(info.get("refine", 1))
        scores, rows = self.index.faiss_index.search(
            query, min((wanted + TIE_SLACK) * refine, limit), params=params)
        del bitmap
        keep = (rows[0] >= 0) & ~np.isin(rows[0], exclude)
        rows, scores = rows[0][keep].astype(np.int64), scores[0][keep]
        if refine > 1:
            scores = ann.rescore(self.index.vectors, rows, query[0])
        order = np.lexsort((rows, -scores))[:n]
        rows, scores = rows[order], self._checked(scores[order])
        if allowed is not None and len(rows) < min(n, limit - len(exclude)):
            return self._exact_among(query[0], allowed, n, exclude)  # IVF missed some
        return rows, scores

    def _dense_side(self, vector, n, allowed, exclude):
        vector = _vector(vector)
        return (vector, *self._dense(vector, n, allowed, exclude))

    def _exact_among(self, vector, allowed, n, exclude):
        """Exact inner products over the allowed rows only (a small filtered set)."""
        if len(exclude):
            allowed = allowed[~np.isin(allowed, exclude)]
        scores = self._checked(np.asarray(self.index.vectors[allowed], dtype=np.float32) @ vector)
        top = best_first(scores, n)
        return allowed[top].astype(np.int64), scores[top]

    def _papers(self, rows: Sequence[int]) -> dict[int, Paper]:
        return self.index.papers.papers(rows)

    def partial(self) -> dict[str, Any]:
        """For shards (search/sharded.py): whether this thread's last request was answered
        without some of them; one index always answers whole ({})."""
        return {}

    def _candidates(self, vector, text, n, filters, mode, exclude, seed_papers) -> Candidates:
        return self.candidates(vector, text, n, filters, mode, exclude, seed_papers)

    def candidates(self, vector, text: str, n: int, filters: Filters | None, mode: str,
                   exclude: np.ndarray = _NO_ROWS, seed_papers: Sequence[Paper] = ()
                   ) -> Candidates:
        """What this index proposes for a query before fusion: each retriever's
        candidates, and every candidate's cosine (with windows) and BM25 share. A shard
        (search/sharded.py) answers with these; merged, they fuse as one index's would.

        Args:
            vector: the query's vector (None in "bm25" mode).
            n: the results wanted ("dense" and "bm25" take that many; fused modes take
                `fusion.pool` from each side, at least n).
            mode: "dense", "bm25", "hybrid" or "related" (an index without BM25 answers
                the fused modes from the dense side).
            exclude: rows never proposed.
            seed_papers: "related" mode: the papers whose distinctive terms are the BM25 query.
        """
        if filters is not None and filters.active:
            allowed = self.allowed_rows(filters)
            if len(allowed) == 0:
                return Candidates.none(mode, self.index.windows is not None)
        else:
            allowed = None
        if mode in ("hybrid", "related") and self.index.lexical is None:
            mode = "dense"
        pool = max(n, self.fusion.pool)
        with_windows = self.index.windows is not None
        if mode == "dense":
            vector = _vector(vector)
            d_rows, d_whole = self._dense(vector, pool if with_windows else n, allowed, exclude)
            dense = d_whole
            if with_windows:  # whole-text candidates, re-scored with their best passage window
                dense = self._checked(windows.combine(d_whole, windows.best_window(
                    self.index.windows, self.index.window_ptr, d_rows, vector)))
            order = np.argsort(d_rows, kind="stable")
            return Candidates(mode, with_windows, d_rows, d_whole, _NO_ROWS, d_rows[order],
                              dense[order], np.zeros(len(d_rows), np.float32))
        retriever = self.index.lexical
        if mode != "bm25":  # the query's encoding and FAISS search overlap the BM25 scoring
            dense_side = _overlap(self._dense_side, vector, pool, allowed, exclude)
        if mode == "related":
            terms = lexical.seed_terms(retriever, seed_papers, SEED_TERMS)
        else:
            terms = lexical.query_terms(retriever, text)
        try:
            bm25 = lexical.scores(retriever, terms)
            ceiling = lexical.ceiling(retriever, terms)
        except (IndexError, ValueError) as e:  # postings pointing outside their arrays
            raise IndexCorrupt(f"{self.index.generation / 'bm25'}: unreadable postings ({e}); "
                               "run `papersift info --verify` or build the index again") from None
        if ceiling > 0:
            bm25 = bm25 / ceiling
        if len(exclude):
            bm25[exclude] = 0.0
        b_rows = top_rows(bm25, pool if mode != "bm25" else n, allowed)
        if mode == "bm25":
            order = np.argsort(b_rows, kind="stable")
            return Candidates(mode, with_windows, _NO_ROWS, np.zeros(0, np.float32), b_rows,
                              b_rows[order], np.zeros(len(b_rows), np.float32), bm25[b_rows][order])
        vector, d_rows, d_whole = dense_side.result()
        union = np.union1d(d_rows, b_rows)
        dense_scores = np.asarray(self.index.vectors[union], dtype=np.float32) @ vector
        if with_windows:  # one window pass over the union serves both
            dense_scores = windows.combine(dense_scores, windows.best_window(
                self.index.windows, self.index.window_ptr, union, vector))
        return Candidates(mode, with_windows, d_rows, d_whole, b_rows, union,
                          self._checked(dense_scores), bm25[union], len(terms.tokens),
                          len(terms.unknown), lexical.idf(retriever, terms))

    def _checked(self, cosines: np.ndarray) -> np.ndarray:
        """Cosines of unit vectors lie in [-1, 1]: anything else comes from damaged vector
        files, refused instead of ranked (a size-preserving bit flip passes the cheap
        checks at open; `info --verify` finds which file)."""
        if len(cosines) and not (np.isfinite(cosines).all() and np.abs(cosines).max() <= 1.01):
            raise IndexCorrupt(f"{self.index.generation}: vectors give cosine scores outside "
                               "[-1, 1]; run `papersift info --verify` or build the index again")
        return cosines

    def close(self) -> None:
        """Release the generation (also done when the searcher is garbage collected)."""
        self.index.close()

    def _row(self, paper_id: str) -> int:
        if not isinstance(paper_id, str) or not paper_id.strip():
            raise InvalidQuery("empty paper id")
        row = self.index.papers.row_of(canonical_id(paper_id))
        if row is None:
            raise UnknownPaper(f"unknown paper id {paper_id!r} in index {self.index.root}")
        return row



_omp = threading.local()


def _one_omp_thread() -> None:
    """Single queries on one OpenMP thread (measured faster than two here, bench/threads.py).
    OpenMP's thread count is per calling thread: set on each thread that searches (the API's
    and the app's request threads, the overlap pool), not once for the process."""
    if not getattr(_omp, "one", False):
        faiss.omp_set_num_threads(1)
        _omp.one = True


class _Encoding:
    """A query's vector, encoded when first asked for (on the thread that needs it)."""

    def __init__(self, encoder: Encoder, text: str) -> None:
        self.encoder, self.text = encoder, text

    def __call__(self) -> np.ndarray:
        return self.encoder.encode([self.text])[0]


def _vector(vector):
    return vector() if isinstance(vector, _Encoding) else vector


# The dense side of a fused query (encoding the query, FAISS) runs on one of these threads
# while the request's own thread scores BM25: both release the GIL, so on two cores a
# hybrid query takes about the longer of the two instead of their sum (docs/benchmarks.md).
_OVERLAP_THREADS = 8
_overlap_pool: ThreadPoolExecutor | None = None
_overlap_lock = threading.Lock()


def _overlap(fn, *args) -> Future:
    global _overlap_pool
    if _overlap_pool is None:
        with _overlap_lock:
            if _overlap_pool is None:
                _overlap_pool = ThreadPoolExecutor(_OVERLAP_THREADS, "papersift-dense")
    return _overlap_pool.submit(fn, *args)


@dataclass(frozen=True)
class _Found:
    """Candidates from `_retrieve`, best first: rows, scores, which retriever found each at
    which rank, each one's cosine and BM25 share, and the best cosine of any candidate."""

    rows: np.ndarray
    scores: np.ndarray
    sources: dict[int, dict[str, int]]
    dense: np.ndarray
    bm25: np.ndarray
    best_dense: float
    best_bm25: float

    @classmethod
    def none(cls) -> _Found:
        empty = np.zeros(0)
        return cls(empty.astype(np.int64), empty, {}, empty, empty, float("-inf"), 0.0)


@dataclass(frozen=True)
class Candidates:
    """One index's (or one shard's) candidates for a query, before fusion.

    mode: the mode they were found for ("dense" when an index without BM25 was asked
        for a fused mode).
    windows: whether dense scores include passage windows.
    d_rows, d_whole: the dense retriever's rows by whole-text cosine, best first, and
        those cosines (as FAISS gave them).
    b_rows: the BM25 retriever's rows, best first.
    rows: every candidate, ascending; `dense` and `bm25` are aligned with it: the dense
        score (cosine, with windows: `windows.combine`) and the BM25 share.
    n_tokens, n_unknown, idf: the query's BM25 tokens, how many the index never saw,
        each known one's normalised IDF (the adaptive weight's features).
    """

    mode: str
    windows: bool
    d_rows: np.ndarray
    d_whole: np.ndarray
    b_rows: np.ndarray
    rows: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    n_tokens: int = 0
    n_unknown: int = 0
    idf: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def none(cls, mode: str, with_windows: bool = False) -> Candidates:
        empty = np.zeros(0, dtype=np.float32)
        return cls(mode, with_windows, _NO_ROWS, empty, _NO_ROWS, _NO_ROWS, empty, empty)


def fused(c: Candidates, n: int, fusion: Fusion, text: str) -> _Found:
    """The `n` best candidates, best first: dense and BM25 modes rank by their own side;
    "hybrid" fuses both with the adaptive (or the fusion's) weight, "related" with
    `RELATED_DENSE_WEIGHT`. Scores are on a fixed 0-1 scale: cosine (dense), BM25 over the
    query's ceiling (bm25), their convex combination (hybrid, related)."""
    if len(c.rows) == 0:
        return _Found.none()
    at_d = np.searchsorted(c.rows, c.d_rows)
    at_b = np.searchsorted(c.rows, c.b_rows)
    if c.mode == "dense":
        rows, scores = c.d_rows, c.dense[at_d]
        if c.windows:
            order = np.argsort(-scores, kind="stable")
            rows, scores = rows[order], scores[order]
        else:
            scores = c.d_whole
        rows, scores = rows[:n], scores[:n]
        best = float(scores[0]) if len(scores) else float("-inf")
        return _Found(rows, scores, {int(r): {"dense": i} for i, r in enumerate(rows, 1)},
                      scores, np.zeros(len(rows)), best, 0.0)
    b_top = c.bm25[at_b]
    if c.mode == "bm25":
        return _Found(c.b_rows, b_top, {int(r): {"bm25": i} for i, r in enumerate(c.b_rows, 1)},
                      np.zeros(len(c.b_rows)), b_top, float("-inf"),
                      float(b_top[0]) if len(b_top) else 0.0)
    d_rows, d_top = c.d_rows, c.d_whole
    if c.windows:
        d_top = c.dense[at_d]
        order = np.argsort(-d_top, kind="stable")
        d_rows, d_top = d_rows[order], d_top[order]
    weight = None  # "convex", "minmax", "rrf": as the Fusion says
    if c.mode == "related":
        weight = RELATED_DENSE_WEIGHT
    elif len(c.b_rows) == 0:
        weight = 1.0  # no query term in the index (stopwords, punctuation): meaning only
    elif fusion.method == "adaptive":
        features = hybrid.query_features(text, c.n_tokens, c.n_unknown, c.idf, d_top[:10],
                                         b_top[:10], hybrid.overlap_at(d_rows, c.b_rows))
        weight = hybrid.adaptive_weight(features)
    rows, scores = fuse(d_rows, c.dense, c.b_rows, c.bm25, fusion, weight)
    sources: dict[int, dict[str, int]] = {}
    for name, ranked in (("dense", d_rows), ("bm25", c.b_rows)):
        for i, r in enumerate(ranked, start=1):
            sources.setdefault(int(r), {})[name] = i
    at = np.searchsorted(c.rows, rows[:n])
    best = float(c.dense.max()) if len(c.dense) else float("-inf")
    return _Found(rows[:n], scores[:n], sources, c.dense[at], c.bm25[at], best,
                  float(b_top[0]) if len(b_top) else 0.0)


def exact_name(author: str) -> tuple[str, bool]:
    """An author filter's name, and whether it asks for exactly that name: `"Wei Li"` in
    double quotes (the app's author links) is Wei Li only; `Wei Li` also finds Li Wei and
    Wei Li Chen."""
    author = author.strip()
    if len(author) > 2 and author[0] == author[-1] == '"':
        return author[1:-1].strip(), True
    return author, False
