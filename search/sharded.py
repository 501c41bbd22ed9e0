"""Searching shards (indexer/shard.py) as one index: scatter each query, merge, fuse once.

Every shard answers a query with its `Candidates` (search/searcher.py): its dense top
`pool` by whole-text cosine, its BM25 top `pool`, and both scores of each of them. The
whole index's top `pool` on either side is among the shards' own top `pool`s, and a
paper's scores are the same in its shard as in the whole index (same vectors; BM25
postings cut from the whole index's, with its corpus statistics), so `merge` rebuilds the
single index's candidates exactly and the one fusion function ranks them: same top-k,
same scores (to float rounding of the dot products).

Shards are served by `ShardServer`s: in this process (`local_shards`, for tests and one
machine) or as Ray actors placed across a cluster's nodes (`ray_shards`). A shard that
does not answer (its actor died, or it took longer than `timeout`) is left out: the
answer is built from the others and says so (`Results.missing`, `"partial": true` and
`"missing_shards"` in the API's JSON); Ray restarts a dead shard actor, which then answers
again. A query that no shard answers is an error (503 in the API).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.encoder import DEFAULT_MODEL
from indexer.errors import IndexCorrupt, InvalidQuery, ModelMismatch, PapersiftError, UnknownPaper
from indexer.records import Paper, canonical_id
from indexer.shard import ShardInfo, read_set, shard_name
from indexer.store import ModelInfo, read_manifest
from search.hybrid import DEFAULT_FUSION, RELEVANCE_FLOOR, Floor, Fusion
from search.recommend import METHODS, rocchio
from search.searcher import (
    Candidates,
    Filters,
    Hit,
    Results,
    Searcher,
    _vector,
    check_k,
    check_sort,
)

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds a query waits for a shard before answering without it
HEALTH_TTL = 1.0  # seconds /health reuses its last look at the shards
PING_TIMEOUT = 2.0  # seconds /health waits for a shard (a hung one must not hang probes)
# Errors that are the request's own fault: raised by whichever shard finds them, as one
# index would raise them. Anything else a shard raises (a damaged shard, a dead process)
# leaves that shard out of the answer, named.
_REQUEST_ERRORS = (InvalidQuery, UnknownPaper)


class ShardsUnavailable(PapersiftError):
    """No shard answered (the API answers 503)."""


class ShardServer:
    """One shard, opened read-only, answering in the whole index's row numbers."""

    def __init__(self, root: str, first: int, fusion: Fusion = DEFAULT_FUSION,
                 run: str | None = None) -> None:
        self.searcher = Searcher(root, None, fusion=fusion, floor=0, correct=False)
        entry = self.searcher.index.manifest.get("shard") or {}
        if run is not None and (entry.get("run") != run or entry.get("first") != first):
            self.searcher.close()  # resharded since the set was opened: never mix two runs
            raise IndexCorrupt(f"{root}: now holds a shard of another `papersift shard` run; "
                               "restart the server to serve the new shards")
        self.first = first
        self.end = first + self.searcher.count

    def ping(self) -> dict[str, Any]:
        """Where this shard is served: rows, generation, process and (in a Ray actor) node."""
        import sys

        node = None
        if "ray" in sys.modules:
            with contextlib.suppress(Exception):
                node = sys.modules["ray"].get_runtime_context().get_node_id()
        return {"first": self.first, "end": self.end, "pid": os.getpid(), "node": node,
                "generation": self.searcher.index.generation.name}

    def categories(self) -> list[tuple[str, int]]:
        return self.searcher.categories

    def candidates(self, vector, text: str, n: int, filters: Filters | None, mode: str,
                   exclude: np.ndarray, seed_papers: Sequence[Paper]) -> Candidates:
        exclude = np.asarray(exclude, dtype=np.int64)
        local = exclude[(exclude >= self.first) & (exclude < self.end)] - self.first
        c = self.searcher.candidates(vector, text, n, filters, mode, local, seed_papers)
        return replace(c, d_rows=c.d_rows + self.first, b_rows=c.b_rows + self.first,
                       rows=c.rows + self.first)

    def papers(self, rows: Sequence[int]) -> dict[int, Paper]:
        mine = [int(r) - self.first for r in rows if self.first <= int(r) < self.end]
        return {r + self.first: p for r, p in self.searcher.index.papers.papers(mine).items()}

    def row_of(self, paper_id: str) -> int:
        """The paper's row in the whole index, -1 when this shard does not hold it."""
        row = self.searcher.index.papers.row_of(paper_id)
        return -1 if row is None else row + self.first

    def rows_of(self, paper_ids: Sequence[str]) -> dict[str, int]:
        return {pid: row + self.first for pid in paper_ids
                if (row := self.searcher.index.papers.row_of(pid)) is not None}

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        local = [int(r) - self.first for r in rows]
        return np.asarray(self.searcher.index.vectors[local], dtype=np.float32)

    def suggest(self, text: str) -> str | None:
        return self.searcher._suggest(text)

    def date_range(self) -> tuple[str, str]:
        return self.searcher.date_range

    def close(self) -> None:
        self.searcher.close()


def merge(parts: Sequence[Candidates], n: int, pool: int) -> Candidates:
    """The single index's candidates from its shards' (rows in the whole index's numbers,
    shards in row order): each side's best `pool` (dense: by whole-text cosine; `n` for
    "dense" without windows and for "bm25", as `Searcher.candidates` takes them), then
    every chosen row's scores from its shard."""
    parts = [c for c in parts if c is not None]
    if not parts:
        raise ShardsUnavailable("no shard answered")
    first = next((c for c in parts if len(c.rows)), parts[0])  # not one its filters emptied
    mode, with_windows = first.mode, first.windows

    def best(rows_of, scores_of, k):
        rows = np.concatenate([rows_of(c) for c in parts]).astype(np.int64)
        scores = np.concatenate([scores_of(c) for c in parts]).astype(np.float32)
        order = np.lexsort((rows, -scores))[:k]  # best first; ties: the lower row
        return rows[order], scores[order]

    k_dense = pool if (mode != "dense" or with_windows) else n
    d_rows, d_whole = best(lambda c: c.d_rows, lambda c: c.d_whole, max(n, k_dense))
    b_rows, b_scores = best(lambda c: c.b_rows, lambda c: c.bm25[np.searchsorted(c.rows, c.b_rows)],
                            max(n, pool) if mode != "bm25" else n)
    all_rows = np.concatenate([c.rows for c in parts])  # shards hold ascending, disjoint rows
    all_dense = np.concatenate([c.dense for c in parts])
    all_bm25 = np.concatenate([c.bm25 for c in parts])
    order = np.argsort(all_rows, kind="stable")
    all_rows, all_dense, all_bm25 = all_rows[order], all_dense[order], all_bm25[order]
    rows = np.union1d(d_rows, b_rows)
    at = np.searchsorted(all_rows, rows)
    informed = max(parts, key=lambda c: c.n_tokens)  # the query's terms: same in every shard
    return Candidates(mode, with_windows, d_rows, d_whole, b_rows, rows, all_dense[at],
                      all_bm25[at], informed.n_tokens, informed.n_unknown, informed.idf)


class _Backend:
    """How the coordinator reaches its shards: `call(i, method, *args)` for one shard,
    `scatter(method, *args)` for all (None where a shard failed)."""

    names: list[str]

    def call(self, i: int, method: str, *args):
        raise NotImplementedError

    def scatter(self, method: str, *args, timeout: float | None = None) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Local(_Backend):
    def __init__(self, servers: list[ShardServer], names: list[str]) -> None:
        self.servers, self.names = servers, names

    def call(self, i, method, *args):
        try:
            return getattr(self.servers[i], method)(*args)
        except _REQUEST_ERRORS:
            raise
        except Exception as e:  # noqa: BLE001 - any shard fault is one line
            raise ShardsUnavailable(f"shard {self.names[i]} did not answer ({_line(e)})") from None

    def scatter(self, method, *args, timeout=None):
        out = []
        for name, server in zip(self.names, self.servers, strict=True):
            try:
                out.append(getattr(server, method)(*args))
            except _REQUEST_ERRORS:
                raise
            except Exception as e:  # noqa: BLE001 - one shard's failure leaves it out
                log.warning("shard %s failed: %s", name, _line(e))
                out.append(None)
        return out

    def close(self):
        for server in self.servers:
            server.close()


class _Ray(_Backend):
    def __init__(self, actors: list[Any], names: list[str], timeout: float) -> None:
        self.actors, self.names, self.timeout = actors, names, timeout

    def call(self, i, method, *args):
        import ray

        try:
            return ray.get(getattr(self.actors[i], method).remote(*args), timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - a shard fault is one line, a bad request its own
            cause = getattr(e, "cause", None)
            if isinstance(cause, _REQUEST_ERRORS):
                raise cause from None
            raise ShardsUnavailable(f"shard {self.names[i]} did not answer ({_line(e)})") from None

    def scatter(self, method, *args, timeout=None):
        import ray
        from ray.exceptions import RayError

        refs = [getattr(actor, method).remote(*args) for actor in self.actors]
        timeout = self.timeout if timeout is None else timeout
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        done = set(ready)
        out = []
        for name, ref in zip(self.names, refs, strict=True):
            if ref not in done:
                log.warning("shard %s did not answer within %.1f s", name, timeout)
                with contextlib.suppress(Exception):  # it may have finished meanwhile
                    ray.cancel(ref, force=False)
                out.append(None)
                continue
            try:
                out.append(ray.get(ref))
            except RayError as e:
                cause = getattr(e, "cause", None)
                if isinstance(cause, _REQUEST_ERRORS):
                    raise cause from None  # the request's own fault (bad filter, ...)
                log.warning("shard %s failed: %s", name, _line(e))
                out.append(None)
        return out

    def close(self):
        import ray

        for actor in self.actors:
            ray.kill(actor)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Corrupt|NotFound|Mismatch|Exception)): (.+)$")


def _line(e: BaseException) -> str:
    """One line saying why a shard failed: a Ray error's cause, or the exception its actor's
    constructor raised (the last "SomeError: message" line of Ray's report), without Ray's
    colour codes."""
    cause = getattr(e, "cause", None)
    text = _ANSI.sub("", str(cause if isinstance(cause, BaseException) else e)).strip()
    raised = [m.group(2) for m in map(_RAISED.match, text.splitlines()) if m]
    if raised:
        return raised[-1][:300]
    return text.splitlines()[0][:300] if text else type(e).__name__


def local_shards(folder: str | Path, fusion: Fusion = DEFAULT_FUSION) -> tuple[list[ShardInfo], _Backend]:
    infos = read_set(folder)
    servers = [ShardServer(str(s.root), s.first, fusion, s.run) for s in infos]
    return infos, _Local(servers, [s.root.name for s in infos])


def ray_shards(folder: str | Path, address: str, fusion: Fusion = DEFAULT_FUSION,
               timeout: float = TIMEOUT) -> tuple[list[ShardInfo], _Backend]:
    """One Ray actor per shard, spread over the cluster's nodes; each opens its shard from
    the same path (a folder every node can read: shared storage, or a copy at that path).
    A dead actor is restarted by Ray (it reopens its shard)."""
    from indexer.cluster import connect

    infos = read_set(folder)
    connect(address)
    import ray

    remote = ray.remote(ShardServer).options(
        num_cpus=1, max_restarts=-1, max_task_retries=0, max_concurrency=4,
        scheduling_strategy="SPREAD")
    actors = [remote.remote(str(s.root.resolve()), s.first, fusion, s.run) for s in infos]
    names = [s.root.name for s in infos]
    backend = _Ray(actors, names, timeout)
    try:
        ray.get([a.ping.remote() for a in actors], timeout=max(60.0, timeout))
    except Exception as e:  # noqa: BLE001 - any failure to open a shard is one line
        backend.close()
        raise PapersiftError(f"shards in {folder} did not open on the cluster: {_line(e)}") from None
    return infos, backend


class _ShardedPapers:
    """What front ends read of `IndexHandle.papers`, answered by the shards."""

    def __init__(self, searcher: ShardedSearcher) -> None:
        self._searcher = searcher

    def categories(self) -> list[tuple[str, int]]:
        return self._searcher.categories

    def date_range(self) -> tuple[str, str]:
        ranges = [r for r in self._searcher.backend.scatter("date_range") if r]
        firsts = [lo for lo, _ in ranges if lo]
        lasts = [hi for _, hi in ranges if hi]
        return (min(firsts) if firsts else "", max(lasts) if lasts else "")


@dataclass
class _ShardedIndex:
    """What front ends read of `Searcher.index` (`IndexHandle`), for a set of shards."""

    root: Path
    generation: Path
    manifest: dict[str, Any]
    papers: Any = None
    size: int = 0
    lexical: Any = None
    windows: Any = None

    def size_bytes(self) -> int:
        return self.size

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def model(self) -> ModelInfo:
        return ModelInfo.recorded(self.manifest)


class ShardedSearcher(Searcher):
    """A `Searcher` over a set of shards: `query`, `search`, `similar`, `recommend`
    (Rocchio), `paper` and `filters` as on one index; browsing, the map and SVM
    recommendations need the whole index and are refused.

    Args:
        folder: the folder `papersift shard --out` wrote.
        encoder: the query encoder (the shards' model).
        address: a Ray cluster's address ("auto", "HOST:PORT"), or None to open the
            shards in this process.
    """

    def __init__(self, folder: str | Path, encoder: Any = None, fusion: Fusion = DEFAULT_FUSION,
                 floor: Floor | float | None = None, correct: bool = True,
                 address: str | None = None, timeout: float = TIMEOUT) -> None:
        self.folder = Path(folder)
        infos = read_set(self.folder)  # before any cluster work: a bad folder is one line
        gen, manifest = read_manifest(infos[0].root)
        model = ModelInfo.recorded(manifest)
        if encoder is not None:
            mine = ModelInfo.of(encoder)
            if (mine.name, mine.fingerprint, mine.dim) != (model.name, model.fingerprint, model.dim):
                raise ModelMismatch(f"{self.folder}: the shards were built with {model.name} "
                                    f"({model.fingerprint[:12]}); queries would be encoded "
                                    f"with {mine.name} ({mine.fingerprint[:12]})")
        self.infos, self.backend = (ray_shards(self.folder, address, fusion, timeout)
                                    if address else local_shards(self.folder, fusion))
        self.encoder, self.fusion, self.correct = encoder, fusion, correct
        self._timeout = timeout
        total = infos[0].total
        manifests = [read_manifest(s.root)[1] for s in infos]
        for info, m in zip(infos, manifests, strict=True):
            if (m["model"], m["dim"]) != (manifest["model"], manifest["dim"]):
                raise IndexCorrupt(f"{info.root}: built with {m['model']['name']} "
                                   f"({m['model']['fingerprint'][:12]}), not the model of "
                                   f"{infos[0].root.name}; write the shards again")
        size = sum(f["size"] for m in manifests for f in m["files"].values())
        self.index = _ShardedIndex(self.folder, self.folder, {
            **manifest, "count": total, "shard": None,
            "files": {f"{s.root.name}/{name}": entry for s, m in zip(infos, manifests, strict=True)
                      for name, entry in m["files"].items()},
            "shards": [{"name": s.root.name, "first": s.first, "end": s.end} for s in infos]},
            _ShardedPapers(self), size)
        self.index.lexical = True if manifest.get("lexical") else None
        if floor is None:
            floor = RELEVANCE_FLOOR if model.name == DEFAULT_MODEL else 0.0
        if not isinstance(floor, Floor):
            floor = Floor(float(floor), float(floor))
        self.floor = floor if floor.dense > 0 or floor.bm25 > 0 else None
        self._lock = threading.Lock()
        self._missing = threading.local()
        self._categories_all: list[tuple[str, int]] | None = None

    @property
    def shard_names(self) -> list[str]:
        return [shard_name(i) for i in range(len(self.infos))]

    def health(self) -> dict[str, Any]:
        """Which shards answer now (each asked once, waiting at most PING_TIMEOUT)."""
        answers = self.backend.scatter("ping", timeout=min(PING_TIMEOUT, self._timeout))
        return {"shards": len(answers),
                "down": [n for n, a in zip(self.backend.names, answers, strict=True) if a is None]}

    @property
    def categories(self) -> list[tuple[str, int]]:
        """Every category with its paper count over all shards (kept once every shard
        has answered)."""
        if self._categories_all is not None:
            return self._categories_all
        counts: dict[str, int] = {}
        answers = self.backend.scatter("categories")
        for part in answers:
            for name, n in part or ():
                counts[name] = counts.get(name, 0) + n
        found = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
        if all(a is not None for a in answers):
            self._categories_all = found
        return found

    def _scatter(self, method: str, *args) -> list[Any]:
        """Every shard's answer (None for a shard that failed, which this request's
        answer then names: `partial`)."""
        answers = self.backend.scatter(method, *args)
        failed = [n for n, a in zip(self.backend.names, answers, strict=True) if a is None]
        if failed:
            seen = getattr(self._missing, "value", ())
            self._missing.value = tuple(sorted(set(seen) | set(failed)))
        return answers

    def _begin(self) -> None:
        self._missing.value = ()

    def partial(self) -> dict[str, Any]:
        """Whether this thread's last request was answered without some shards."""
        missing = list(getattr(self._missing, "value", ()))
        return {"partial": bool(missing), "missing_shards": missing}

    def _candidates(self, vector, text, n, filters, mode, exclude, seed_papers) -> Candidates:
        vector = _vector(vector)  # encoded here: the shards are sent the vector
        parts = self._scatter("candidates", vector, text, n, filters, mode, exclude,
                              list(seed_papers))
        return merge(parts, n, max(n, self.fusion.pool))

    def _query(self, text, typed, k, filters, sort, mode, use_floor=True) -> Results:
        self._begin()
        results = super()._query(text, typed, k, filters, sort, mode, use_floor)
        return replace(results, missing=self._missing.value, sharded=True)

    def _papers(self, rows: Sequence[int]) -> dict[int, Paper]:
        found: dict[int, Paper] = {}
        if not rows:
            return found
        wanted = [int(r) for r in rows]
        for i, s in enumerate(self.infos):  # ask only the shards holding some of the rows
            mine = [r for r in wanted if s.first <= r < s.end]
            if not mine:
                continue
            try:
                found.update(self.backend.call(i, "papers", mine))
            except ShardsUnavailable as e:
                log.warning("%s", e)
                self._missing.value = tuple(sorted({*getattr(self._missing, "value", ()),
                                                    self.backend.names[i]}))
        return found

    def _suggest(self, text: str) -> str | None:
        if self.index.lexical is None:
            return None
        for i in range(len(self.infos)):  # every shard holds the whole vocabulary
            try:
                return self.backend.call(i, "suggest", text)
            except ShardsUnavailable:
                continue  # ask the next shard
        return None

    def _row(self, paper_id: str) -> int:
        if not isinstance(paper_id, str) or not paper_id.strip():
            raise InvalidQuery("empty paper id")
        answers = self.backend.scatter("row_of", canonical_id(paper_id))
        for row in answers:
            if row is not None and row >= 0:
                return int(row)
        down = [n for n, a in zip(self.backend.names, answers, strict=True) if a is None]
        if down:  # it may be in a shard that did not answer: not known to be unknown
            raise ShardsUnavailable(f"paper {paper_id!r} not found: shards {', '.join(down)} "
                                    "did not answer")
        raise UnknownPaper(f"unknown paper id {paper_id!r} in shards {self.folder}")

    def rows_of(self, paper_ids: Sequence[str]) -> dict[str, int]:
        """Rows (in the whole index) of the ids that are in some shard answering now."""
        self._begin()
        canonical = {pid: canonical_id(pid) for pid in paper_ids if isinstance(pid, str)}
        found: dict[str, int] = {}
        for part in self._scatter("rows_of", sorted(set(canonical.values()))):
            found.update(part or {})
        return {pid: found[c] for pid, c in canonical.items() if c in found}

    def _vectors(self, rows: Sequence[int]) -> np.ndarray:
        out = np.zeros((len(rows), self.index.model.dim), dtype=np.float32)
        for i, s in enumerate(self.infos):
            mine = [j for j, r in enumerate(rows) if s.first <= r < s.end]
            if mine:
                out[mine] = self.backend.call(i, "vectors", [rows[j] for j in mine])
        return out

    def paper(self, paper_id: str) -> Paper:
        self._begin()
        row = self._row(paper_id)
        found = self._papers([row])
        if row not in found:
            raise ShardsUnavailable(f"the shard holding {paper_id} did not answer")
        return found[row]

    def similar(self, paper_id: str, k: int = 10, filters: Filters | None = None,
                sort: str = "relevance") -> list[Hit]:
        check_k(k)
        check_sort(sort)
        self._begin()
        row = self._row(paper_id)
        vector = self._vectors([row])[0]
        return self._ranked(vector, "", k, filters, sort, "related", exclude=(row,), seeds=(row,))

    def recommend(self, like: Sequence[str], unlike: Sequence[str] = (), k: int = 10,
                  filters: Filters | None = None, sort: str = "relevance",
                  method: str = "rocchio") -> list[Hit]:
        check_k(k)
        check_sort(sort)
        if method not in METHODS:
            raise InvalidQuery(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if method != "rocchio":
            raise InvalidQuery(f"method {method!r} needs the whole index; sharded indexes "
                               "recommend with rocchio")
        if not like:
            raise InvalidQuery("give at least one paper to like")
        self._begin()
        rows = self.rows_of([*like, *unlike])
        for pid in [*like, *unlike]:
            if pid not in rows:  # unknown, or its shard did not answer (raises), or back now
                rows[pid] = self._row(pid)
        like_rows = list(dict.fromkeys(rows[p] for p in like))
        unlike_rows = list(dict.fromkeys(rows[p] for p in unlike))
        if both := set(like_rows) & set(unlike_rows):
            ids = ", ".join(sorted({p for p in [*like, *unlike] if rows[p] in both}))
            raise InvalidQuery(f"paper {ids} is both liked and unliked")
        direction = rocchio(self._vectors(sorted(like_rows)), self._vectors(sorted(unlike_rows)))
        exclude = tuple(sorted(set(like_rows) | set(unlike_rows)))
        return self._ranked(direction, "", k, filters, sort, "related", exclude=exclude,
                            seeds=tuple(like_rows))

    def atlas(self):
        return None  # maps are computed on a whole index

    def _whole_index_only(self, *args, **kwargs):
        raise InvalidQuery("this needs the whole index; a sharded index answers searches, "
                           "similar papers and recommendations")

    browse = allowed_rows = search_vector = _whole_index_only

    def close(self) -> None:
        self.backend.close()


class ShardedEngine:
    """What `Engine` is to one index, for shards: the API's `searcher()` and `problem`."""

    def __init__(self, searcher: ShardedSearcher) -> None:
        self._searcher = searcher
        self.encoder = searcher.encoder
        self.switches = 0
        self._health: tuple[float, str | None] = (float("-inf"), None)

    def searcher(self) -> ShardedSearcher:
        return self._searcher

    @property
    def problem(self) -> str | None:
        """Shards that do not answer now (each asked at most once a second), or None."""
        checked, found = self._health
        if time.monotonic() - checked > HEALTH_TTL:
            down = self._searcher.health()["down"]
            found = f"shards not answering: {', '.join(down)}" if down else None
            self._health = (time.monotonic(), found)
        return found

    @property
    def generation(self) -> Path:
        return self._searcher.folder


def open_sharded_engine(folder: str | Path, address: str | None, model: str | None = None, *,
                        warm: bool = False, encoder: Any = None, encoder_factory: Any = None,
                        timeout: float = TIMEOUT) -> ShardedEngine:
    """`search.engine.open_engine` for a folder of shards: checked before the model loads;
    with `address`, one Ray actor per shard on that cluster, else all in this process."""
    read_set(folder)
    from indexer import lexical

    lexical.import_bm25s()  # before any other thread runs, as open_engine does
    if encoder is None:
        if encoder_factory is None:
            from indexer.query_encoder import query_encoder as encoder_factory
        encoder = encoder_factory(model)
    engine = ShardedEngine(ShardedSearcher(folder, encoder, address=address, timeout=timeout))
    if warm:
        engine.encoder.encode(["warm-up"])
    return engine
