"""The `Engine`: one index opened for a long-running front end, following every update.

A `Searcher` answers from the one generation it opened. The engine holds the current
searcher and, once per request (`Engine.searcher()`), looks at the index's `CURRENT` file
(one `stat`, about a microsecond): when a writer has switched to a new generation it opens
a searcher on it and serves from that one. A request keeps the searcher it was given from
start to end, so it is answered wholly from one generation or the other; the old
searcher's lease on its generation (indexer/store.py) is released when the last request
using it lets go of it, which also removes that generation from disk.

A new generation that fails to open (a damaged `CURRENT`, a model mismatch) is not
served: the engine keeps answering from the generation it has, reports the problem in
`Engine.problem` and tries again when `CURRENT` changes next.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from indexer.errors import PapersiftError
from indexer.store import CURRENT
from search.searcher import Searcher


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Engine:
    """The current searcher of an index, followed across generations.

    Args:
        root: the index folder.
        encoder: the query encoder shared by every generation's searcher.
        **options: passed to each `Searcher` (fusion, floor, correct).

    Raises:
        IndexNotFound, IndexCorrupt, ModelMismatch: when the index cannot be opened now.
    """

    def __init__(self, root: str | Path, encoder: Any = None, **options: Any) -> None:
        self.root = Path(root)
        self.encoder = encoder
        self.options = options
        self._pointer = self.root / CURRENT
        self._stamp = _stamp(self._pointer)
        self._searcher = Searcher(self.root, encoder, **options)
        self._opening = threading.Lock()
        self.problem: str | None = None  # why the newest generation is not served
        self.switches = 0

    def searcher(self) -> Searcher:
        """The searcher of the newest generation that opened; use one per request."""
        stamp = _stamp(self._pointer)
        if stamp != self._stamp and self._opening.acquire(blocking=False):
            try:  # one request opens the new generation; others keep the old one meanwhile
                if stamp != self._stamp:
                    self._follow(stamp)
            finally:
                self._opening.release()
        return self._searcher

    def _follow(self, stamp) -> None:
        self._stamp = stamp
        try:
            fresh = Searcher(self.root, self.encoder, **self.options)
        except Exception as e:  # noqa: BLE001 (whatever it is, the old generation serves on)
            self.problem = str(e) if isinstance(e, PapersiftError) else f"{type(e).__name__}: {e}"
            return
        if fresh.index.generation != self._searcher.index.generation:
            self.switches += 1
        self._searcher = fresh
        self.problem = None

    @property
    def generation(self) -> Path:
        return self._searcher.index.generation


def open_engine(index: str | Path, model: str | None = None, *, with_model: bool = True,
                warm: bool = False, encoder: Any = None, encoder_factory: Any = None,
                **options: Any) -> Engine:
    """The one way every front end (CLI, app, HTTP API, MCP) opens an index.

    Args:
        index: the index folder.
        model: the --model value (None: the packaged default).
        with_model: False opens it for lookups, `similar` and recommendations only (no
            query encoder is loaded).
        warm: encode a first query now, so the first request does not pay for loading.
        encoder: a query encoder to use instead of choosing one (tests pass a fake).
        encoder_factory: `model -> encoder`, called only when a model is needed; default
            `indexer.query_encoder.query_encoder` (the cached OpenVINO model, no torch).
        **options: passed to each `Searcher`.

    Raises:
        IndexNotFound, IndexCorrupt, ModelMismatch, PapersiftError: one line each.
    """
    from indexer.store import read_manifest

    read_manifest(Path(index))  # fail on a missing index before loading any model
    from indexer import lexical

    lexical.import_bm25s()  # imported (hiding numba and scipy.sparse) before any other thread runs
    if encoder is None and with_model:
        if encoder_factory is None:
            from indexer.query_encoder import query_encoder as encoder_factory
        encoder = encoder_factory(model)
    engine = Engine(index, encoder if with_model else None, **options)
    if warm and engine.encoder is not None:
        engine.encoder.encode(["warm-up"])
    return engine


_SHARED: dict[tuple[str, str | None], Engine] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(index: str | Path, model: str | None = None) -> Engine:
    """One warmed engine per (index, model) in this process: the app's server start and
    its pages share it, so the first page finds the model loaded. Nothing is kept when
    opening fails (the next call tries again)."""
    key = (str(Path(index)), model)
    with _SHARED_LOCK:
        engine = _SHARED.get(key)
        if engine is None:
            engine = _SHARED[key] = open_engine(index, model, warm=True)
    return engine
