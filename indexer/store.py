"""The on-disk index format: the only module that knows it, writes it and reads it.

An index is a folder::

    INDEX/
      CURRENT              name of the generation being served (switched by atomic rename)
      .lock                flock held by the one process writing this index
      fetched/             downloads in progress for `update --from` (resumable)
      .ray-blocks/         blocks a `--ray` build has encoded so far (<sha256>.npy, float32),
                           so a restarted build skips them; removed once it is served
      gen-<utc>-<hex>/     one complete, immutable generation
        papers.sqlite      metadata, the source of truth; `row` = FAISS id = vector row
        vectors.npy        float32 or float16 (count, dim), L2-normalised; memory-mapped,
                           read with allow_pickle=False
        faiss.index        FAISS index over the same rows: exact IndexFlatIP, or IVF above
                           a size (indexer/ann.py), with its parameters in the manifest
        bm25/              BM25 (bm25s arrays as .npy, vocabulary and parameters as JSON) and
                           words.json, the spelling vocabulary (word -> document frequency)
        windows.npy        optional: passage-window vectors (indexer/windows.py), float16;
                           window_owners.npy (int32, ascending) names the row of each
                           window's paper
        map/               optional (`papersift map`, kept by updates): coords.npy (n, 2),
                           clusters.npy (n,), atlas.json (labels, terms, method, seed)
        manifest.json      schema, versions, model name + weights hash, dim, metric, count,
                           FAISS description, the build choices (`build`: index type asked,
                           float16, windows, imported vectors, the Ray cluster that encoded
                           it; `map`: clusters, method, seed as asked), each file's size
                           and sha256 (written last)

Generations are never changed once written: a new map is a new generation whose other
files are hard links to the served one's (`derive_generation`). A writer builds a new
generation beside the served one and switches `CURRENT` last, so a process killed at any
point leaves the previous generation serving. Every reader holds a lease on the generation
it opened (a shared flock on its folder, `IndexHandle.close` releases it); writers remove
leftovers (generations `CURRENT` does not name) that nobody leases, and a reader that
lets go of a superseded generation removes it if it was the last one holding it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import functools
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer import __version__, ann, lexical
from indexer.errors import (
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    ModelMismatch,
    PapersiftError,
)
from indexer.files import sha256_of
from indexer.records import Paper

SCHEMA_VERSION = 2
IMPORTED = "imported"  # the model fingerprint of vectors computed elsewhere (--vectors)
CURRENT = "CURRENT"
LOCK = ".lock"
FETCHED = "fetched"
RAY_BLOCKS = ".ray-blocks"
MANIFEST = "manifest.json"
PAPERS_DB = "papers.sqlite"
VECTORS = "vectors.npy"
FAISS_INDEX = "faiss.index"
BM25_DIR = "bm25"
WINDOWS = "windows.npy"
WINDOW_OWNERS = "window_owners.npy"
MAP_DIR = "map"
ATLAS_JSON = "atlas.json"
DATA_FILES = (PAPERS_DB, VECTORS, FAISS_INDEX)
_GEN_NAME = re.compile(r"^gen-[0-9TZ]+-[0-9a-f]+$")

_SCHEMA = """
CREATE TABLE papers (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    abstract TEXT NOT NULL,
    authors TEXT NOT NULL,
    categories TEXT NOT NULL,
    primary_category TEXT NOT NULL,
    published TEXT NOT NULL,
    url TEXT NOT NULL,
    upvotes INTEGER,
    num_comments INTEGER,
    keywords TEXT NOT NULL,
    version INTEGER,
    content_hash TEXT NOT NULL
);
CREATE INDEX papers_published ON papers(published);
CREATE TABLE paper_categories (
    category TEXT NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (category, row)
) WITHOUT ROWID;
CREATE TABLE author_postings (
    part TEXT PRIMARY KEY,
    n INTEGER NOT NULL,
    codes BLOB NOT NULL
) WITHOUT ROWID;
"""
# Author search by name: each author's name is folded (accents removed, case folded) and
# split into parts; `author_postings` maps a part to the sorted int64 codes
# row * AUTHOR_SLOTS + position of the author in the paper (little-endian), so one lookup
# per query word is one BLOB, and "same author" is the same code. "^x" keys list the
# authors with a part starting with x (a query's initial "J" or "J.").
AUTHOR_SLOTS = 1 << 16  # authors per paper told apart (large collaborations have thousands)
_FOLD = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i",
                       "þ": "th", "ð": "d"})
_NAME_PART = re.compile(r"[^\W_]+")


def name_parts(name: str) -> list[str]:
    """A name's parts, accent- and case-folded: "Jürgen Müller-Ørsted" ->
    ["jurgen", "muller", "orsted"]."""
    return list(_name_parts(name))


@functools.lru_cache(maxsize=1 << 18)  # the same people sign many papers
def _name_parts(name: str) -> tuple[str, ...]:
    if name.isascii():
        return tuple(_NAME_PART.findall(name.lower()))
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_FOLD)
    return tuple(_NAME_PART.findall(text))


def _author_postings(papers: Sequence[Paper]) -> Iterator[tuple[str, int, bytes]]:
    postings: dict[str, list[int]] = {}
    for row, paper in enumerate(papers):
        for slot, author in enumerate(paper.authors[:AUTHOR_SLOTS]):
            code = row * AUTHOR_SLOTS + slot
            for part in set(_name_parts(author)):
                postings.setdefault(part, []).append(code)
                if len(part) > 1 and part[0].isascii():
                    postings.setdefault("^" + part[0], []).append(code)
    for part, codes in postings.items():  # ascending and unique as appended
        yield part, len(codes), np.asarray(codes, dtype="<i8").tobytes()


def _match_keys(part: str, n_parts: int, split: bool = False):
    """The postings a query part matches: in full (exact) and through initials (loose)."""
    if len(part) == 1 and part.isascii():
        exact, loose = [], ["^" + part, part]  # an initial: any name part starting with it
    elif len(part) == 1:  # one character of a script without initials (李, 伟) is a name
        exact, loose = [part], []
    else:
        exact = [part]  # and a stored initial ("J. Smith") for a full first name
        loose = [part[0]] if n_parts > 1 and part[0].isascii() else []
    return (exact, loose) if split else exact + loose


def _member(codes: np.ndarray, postings: list[np.ndarray]) -> np.ndarray:
    """Which of `codes` are in any of the sorted `postings` (binary search each)."""
    found = np.zeros(len(codes), dtype=bool)
    for sorted_codes in postings:
        if len(sorted_codes):
            at = np.minimum(np.searchsorted(sorted_codes, codes), len(sorted_codes) - 1)
            found |= sorted_codes[at] == codes
    return found


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the model that made an index's vectors."""

    name: str
    fingerprint: str
    dim: int

    @classmethod
    def of(cls, encoder: Any) -> ModelInfo:
        return cls(encoder.name, encoder.fingerprint, encoder.dim)

    @classmethod
    def recorded(cls, manifest: dict[str, Any]) -> ModelInfo:
        """The model a (checked) manifest names."""
        m = manifest["model"]
        return cls(m["name"], m["fingerprint"], int(manifest["dim"]))


# ---------------------------------------------------------------- writing


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


_HELD: dict[tuple[Path, int], int] = {}  # (index folder, thread) holding its write lock
_HELD_LOCK = threading.Lock()


def check_folder(root: Path) -> None:
    """Refuse an index location that exists but is not a folder (one line, no traceback)."""
    if root.exists() and not root.is_dir():
        raise IndexNotFound(f"{root} is a file, not an index folder")


LOCK_PATIENCE = 1.0  # seconds a writer waits for a reader's moment with the lock


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the index's write lock; a second writer is refused within `LOCK_PATIENCE`.

    A reader letting go of a superseded generation holds the lock for a moment (to rename
    it for removal, indexer/store.py `release_generation`), so a writer waits up to
    `LOCK_PATIENCE` seconds before it says another process is writing; real writers hold
    it for the whole build or update.

    Re-entrant within a thread: `update --from` takes it before fetching and the update
    itself takes it again. Another thread or process is refused.
    """
    root = Path(root)
    check_folder(root)
    key = (root.resolve(), threading.get_ident())
    with _HELD_LOCK:
        if key in _HELD:
            _HELD[key] += 1
            held = True
        else:
            held = False
    if held:
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD[key] -= 1
        return
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK).open("a") as handle:
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLocked(f"{root}: another papersift process is writing this "
                                      "index") from None
                time.sleep(0.02)
        with _HELD_LOCK:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _HELD_LOCK:
                del _HELD[key]
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_dir(root: Path) -> Path:
    """Where `update --from` keeps a fetch in progress (resumable; removed once merged)."""
    return Path(root) / FETCHED


def blocks_dir(root: Path) -> Path:
    """Where a `--ray` build checkpoints encoded blocks (indexer/cluster.py)."""
    return Path(root) / RAY_BLOCKS


def generations(root: Path) -> list[Path]:
    """The complete generation folders (with a manifest) under `root`, newest first."""
    try:
        children = list(Path(root).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [c for c in children if _GEN_NAME.match(c.name) and (c / MANIFEST).is_file()]
    return sorted(found, key=lambda c: c.name, reverse=True)


def _recovery_hint(root: Path) -> str:
    found = generations(root)
    if not found:
        return "no complete generation folder is left; build the index again"
    names = ", ".join(g.name for g in found[:3]) + (f" and {len(found) - 3} more"
                                                    if len(found) > 3 else "")
    return (f"generation folders found: {names}; run `papersift repair --index {root}` to "
            "serve the newest sound one, or build the index again")


def current_generation(root: Path) -> Path | None:
    """The generation folder `CURRENT` names, or None when there is no `CURRENT` file.

    Raises IndexCorrupt for a `CURRENT` that is empty, not UTF-8 or names no generation.
    """
    path = root / CURRENT
    try:
        name = path.read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise IndexCorrupt(f"{path}: not UTF-8 text; {_recovery_hint(root)}") from None
    except OSError as e:
        raise IndexCorrupt(f"{path}: unreadable ({e.strerror}); {_recovery_hint(root)}") from None
    if not name:
        raise IndexCorrupt(f"{path}: empty; {_recovery_hint(root)}")
    if not _GEN_NAME.match(name):
        raise IndexCorrupt(f"{path}: names {name[:80]!r}, which is not a generation; "
                           f"{_recovery_hint(root)}")
    return root / name


_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def _try_exclusive(folder: Path) -> int | None:
    """An fd holding an exclusive flock on `folder`, or None when a reader leases it
    (or it is gone). Where the file system has no flock (some network mounts) nobody can
    hold a lease, and the folder is taken as free."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in _NO_LOCKS:
            return fd
        os.close(fd)
        return None
    return fd


def _remove_unleased(folder: Path, background: bool = False) -> bool:
    """Delete a generation folder unless a reader leases it; True when it is gone from
    the generations. It is first renamed out of their name space (atomic), so a removal
    cut short leaves a `.gen-` leftover, never a half-deleted generation; `background`
    deletes the renamed folder in a thread (a reader's request does not wait for
    gigabytes to be unlinked)."""
    if not folder.is_dir():
        folder.unlink(missing_ok=True)
        return True
    fd = _try_exclusive(folder)
    if fd is None:
        return False
    try:
        doomed = folder
        if not folder.name.startswith("."):
            doomed = folder.with_name(f".{folder.name}-removing")
            os.rename(folder, doomed)
    except OSError:
        os.close(fd)
        return False

    def delete() -> None:
        try:
            shutil.rmtree(doomed, ignore_errors=True)
        finally:
            os.close(fd)

    if background:
        threading.Thread(target=delete, name="papersift-remove", daemon=True).start()
    else:
        delete()
    return not folder.exists()


def _sound_current(root: Path) -> Path | None:
    """The generation `CURRENT` names when it exists and its manifest loads; else None
    (then nothing may be removed: the other generations may be all that is left)."""
    try:
        current = current_generation(root)
        if current is None:
            return None
        _load_manifest(current)
    except PapersiftError:
        return None
    return current


def remove_leftovers(root: Path) -> list[Path]:
    """Delete generations `CURRENT` does not name (crashed or superseded builds) that no
    reader leases; leased ones stay until a later writer (or their last reader) removes
    them. Unless `CURRENT` names a sound generation nothing is removed: the others may be
    the only copy of the papers until a new one is served or `repair` points at one."""
    current = _sound_current(root)
    if current is None:
        return []
    removed = []
    for child in root.iterdir():
        leftover = child.name.startswith(("gen-", ".gen-")) or child.name == f".{CURRENT}.tmp"
        if leftover and child != current and _remove_unleased(child):
            removed.append(child)
    return removed


def _lease(root: Path, attempts: int = 20) -> tuple[Path, int]:
    """The current generation and an fd holding a shared flock on its folder (the lease).

    A writer removing a superseded generation holds an exclusive lock on it while it
    deletes; a reader arriving then waits, finds the folder gone and reads `CURRENT` again.
    """
    for _ in range(attempts):
        gen = current_generation(root)
        if gen is None:
            raise IndexNotFound(f"no index at {root} (no {CURRENT} file; "
                                f"{_recovery_hint(root)})" if generations(root)
                                else f"no index at {root} (no {CURRENT} file)")
        try:
            fd = os.open(gen, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if current_generation(root) == gen:  # not a switch in progress: it is gone
                raise IndexCorrupt(f"{root / CURRENT}: names {gen.name}, which does not "
                                   f"exist; {_recovery_hint(root)}") from None
            continue  # removed between reading CURRENT and opening it: CURRENT moved on
        except OSError as e:
            raise IndexCorrupt(f"{gen}: cannot open ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as e:
            if e.errno not in _NO_LOCKS:
                os.close(fd)
                raise IndexCorrupt(f"{gen}: cannot lock ({e.strerror})") from None
            # no flock on this file system: served without a lease
        if (gen / MANIFEST).exists() or current_generation(root) == gen:
            return gen, fd
        os.close(fd)
    raise IndexCorrupt(f"{root}: {CURRENT} keeps naming generations that are being removed")


def release_generation(root: Path, gen: Path, fd: int) -> None:
    """Let go of a lease. A superseded generation is removed now if nobody else leases
    it, `CURRENT` names a sound generation and no writer (or `repair`) is at work, so a
    long-running reader frees the disk as soon as it has moved on; otherwise the next
    writer removes it."""
    try:
        os.close(fd)
    except OSError:
        return
    current = _sound_current(root)
    if current is None or current == gen:
        return
    if (root.resolve(), threading.get_ident()) in _HELD:  # this thread is the writer
        _remove_unleased(gen)
        return
    try:
        with (root / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                if _sound_current(root) not in (None, gen):
                    _remove_unleased(gen, background=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError:
        return  # a writer is at work (it removes leftovers itself) or the folder is read-only


def _write_papers(path: Path, papers: Sequence[Paper]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        db.executemany(
            "INSERT INTO papers VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    row, p.id, p.title, p.abstract,
                    json.dumps(list(p.authors), ensure_ascii=False),
                    json.dumps(list(p.categories), ensure_ascii=False),
                    p.primary_category, p.published, p.url, p.upvotes, p.num_comments,
                    json.dumps(list(p.keywords), ensure_ascii=False), p.version, p.content_hash,
                )
                for row, p in enumerate(papers)
            ),
        )
        db.executemany(
            "INSERT OR IGNORE INTO paper_categories VALUES (?, ?)",
            ((c, row) for row, p in enumerate(papers) for c in p.categories),
        )
        db.executemany("INSERT INTO author_postings VALUES (?, ?, ?)", _author_postings(papers))
        db.commit()
    finally:
        db.close()
    _fsync_path(path)


def _write_vectors(path: Path, vectors: np.ndarray) -> None:
    with path.open("wb") as f:
        np.save(f, vectors, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_faiss(path: Path, vectors: np.ndarray, index_type: str = "auto",
                 float16: bool = False, reuse: tuple | None = None,
                 probe: Callable[[], ann.Probe | None] | None = None,
                 stored: np.ndarray | None = None) -> dict[str, Any]:
    extended = ann.extend(*reuse, probe=probe, float16=float16, stored=stored) if reuse else None
    index, info = extended or ann.build(vectors, index_type, float16=float16, probe=probe,
                                        stored=stored)
    faiss.write_index(index, str(path))
    _fsync_path(path)
    return info


def write_generation(
    root: Path,
    papers: Sequence[Paper],
    vectors: np.ndarray,
    model: ModelInfo,
    index_type: str = "auto",
    float16: bool = False,
    reuse: tuple | None = None,
    with_lexical: bool = True,
    before_switch: Callable[[Path], None] | None = None,
    windows: tuple[np.ndarray, np.ndarray] | None = None,
    vectors_name: str | None = None,
    lexical_index: Any = None,
    shard: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    probe_encode: Callable[[list[str]], np.ndarray] | None = None,
) -> Path:
    """Write a complete generation and make it current. Call inside `writer_lock(root)`.

    Args:
        root: the index folder.
        papers: the papers, row-aligned with `vectors`, ids unique.
        vectors: (len(papers), model.dim) float32 unit vectors.
        model: identity of the model that made `vectors`.
        index_type: "auto" (exact below ann.EXACT_LIMIT papers, IVF above), "flat", "ivf";
            recorded as asked, so updates and rebuilds keep the user's choice.
        float16: store vectors and FAISS codes in 2 bytes per dimension instead of 4.
        reuse: (old FAISS index, its manifest entry, changed rows, old count) from the
            served generation: an update then extends a trained IVF index (ann.extend).
        with_lexical: also write the BM25 index (hybrid and keyword search need it).
        before_switch: called with the new generation before its manifest is written
            (builds and updates compute the map there, so the manifest covers it and the
            app never sees a map-less generation).
        windows: (window vectors, owner row of each, ascending) from indexer/windows.py.
        vectors_name: the file the vectors were imported from (`--vectors`), recorded.
        lexical_index: a BM25 index to store instead of building one from the papers (a
            shard's: the whole index's postings cut to its rows, `lexical.cut`).
        shard: which part of which index this generation is (indexer/shard.py), recorded.
        cluster: how a Ray cluster encoded the vectors (nodes, actors, gpus), recorded as
            `build.ray`; None for a local build (no entry).
        probe_encode: encodes texts as queries with the model of `vectors`: the recall
            guard of an approximate index then measures recall with words of the papers
            (`ann.text_probe`); without it (or when it returns None) with noisy vectors.

    Returns:
        The new generation's folder.

    Raises:
        PapersiftError: a file could not be written (disk full, file size limit); the
            half-written generation is removed at once and the served one is untouched.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (len(papers), model.dim):
        raise ValueError(f"vectors shape {vectors.shape} != ({len(papers)}, {model.dim})")
    build = {"index_type": index_type, "float16": bool(float16),
             "windows": windows is not None, "lexical": bool(with_lexical),
             "vectors": vectors_name}
    if cluster is not None:
        build["ray"] = dict(cluster)
    with _new_generation(root) as gen:
        probe = None
        if probe_encode is not None:
            made: list[ann.Probe | None] = []

            def probe() -> ann.Probe | None:  # made once: an update may extend, then rebuild
                if not made:
                    made.append(ann.text_probe([p.title for p in papers],
                                               [p.abstract for p in papers], probe_encode))
                return made[0]
        manifest = _write_files(gen, papers, vectors, model, index_type, float16, reuse,
                                with_lexical, before_switch, windows, build, lexical_index, probe)
        if shard is not None:
            manifest["shard"] = shard
        _write_atomic(gen / MANIFEST, json.dumps(manifest, indent=2).encode())
        _switch(root, gen)
    return gen


@contextlib.contextmanager
def _new_generation(root: Path) -> Iterator[Path]:
    """A fresh generation folder to write and switch to. Anything failing inside removes
    it at once (an OSError or SQLite error, e.g. a full disk, becomes one line); after
    the switch the superseded generation goes, unless a reader still leases it."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    gen = root / f"gen-{stamp}-{secrets.token_hex(3)}"
    gen.mkdir(parents=True)
    try:
        yield gen
    except BaseException as e:
        shutil.rmtree(gen, ignore_errors=True)
        if isinstance(e, OSError | sqlite3.Error):
            why = getattr(e, "strerror", None) or str(e)
            raise PapersiftError(f"{root}: could not write a new generation ({why}); "
                                 "the index is unchanged") from None
        raise
    remove_leftovers(root)


def _switch(root: Path, gen: Path) -> None:
    _write_atomic(root / CURRENT, f"{gen.name}\n".encode())


def _file_entries(gen: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {name: {"size": (gen / name).stat().st_size, "sha256": sha256_of(gen / name)}
            for name in names}


def _map_files(gen: Path) -> list[str]:
    folder = gen / MAP_DIR
    return sorted(f"{MAP_DIR}/{f.name}" for f in folder.iterdir()) if folder.is_dir() else []


def _map_entry(gen: Path) -> dict[str, Any] | None:
    """The map's options as asked and as computed, for the manifest (None without a map)."""
    try:
        info = json.loads((gen / MAP_DIR / ATLAS_JSON).read_text()).get("info", {})
    except (OSError, ValueError, AttributeError):
        return None
    asked = info.get("asked") or {}
    return {"clusters": asked.get("clusters"), "method": asked.get("method", "auto"),
            "seed": info.get("seed"), "computed_clusters": info.get("clusters"),
            "computed_method": info.get("method")}


def _write_files(gen, papers, vectors, model, index_type, float16, reuse, with_lexical,
                 before_switch, windows, build, lexical_index=None, probe=None) -> dict[str, Any]:
    _write_papers(gen / PAPERS_DB, papers)
    stored = vectors.astype(np.float16) if float16 else vectors  # written, and re-scored on
    _write_vectors(gen / VECTORS, stored)
    faiss_info = _write_faiss(gen / FAISS_INDEX, vectors, index_type, float16, reuse, probe,
                              stored)
    del stored
    files = list(DATA_FILES)
    if windows is not None:
        win_vectors, owners = windows
        win_vectors = np.ascontiguousarray(win_vectors, dtype=np.float16)
        if (win_vectors.shape[1:] != (model.dim,) or len(owners) != len(win_vectors)
                or (len(owners) and (np.any(np.diff(owners) < 0) or owners[0] < 0
                                     or owners[-1] >= len(papers)))):
            raise ValueError("window vectors must be (n, dim) with ascending owner rows")
        _write_vectors(gen / WINDOWS, win_vectors)
        _write_vectors(gen / WINDOW_OWNERS, np.asarray(owners, dtype=np.int32))
        files += [WINDOWS, WINDOW_OWNERS]
    if with_lexical:
        if lexical_index is None:
            lexical_index = lexical.build([p.title for p in papers], [p.abstract for p in papers])
        lexical.save(lexical_index, gen / BM25_DIR)
        files += sorted(f"{BM25_DIR}/{f.name}" for f in (gen / BM25_DIR).iterdir())
    for name in files[len(DATA_FILES):]:
        _fsync_path(gen / name)
    window_info = None
    if windows is not None:
        from indexer import windows as windowing

        window_info = {"count": len(windows[1]), "tokens": windowing.WINDOW,
                       "stride": windowing.STRIDE, "whole_weight": windowing.WHOLE_WEIGHT}
    if before_switch is not None:
        before_switch(gen)
    files += _map_files(gen)
    return {
        "schema_version": SCHEMA_VERSION,
        "papersift_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {"name": model.name, "fingerprint": model.fingerprint},
        "dim": model.dim,
        "metric": "inner_product",
        "normalized": True,
        "vector_dtype": "float16" if float16 else "float32",
        "count": len(papers),
        "faiss": faiss_info,
        "lexical": dict(lexical.SETTINGS) if with_lexical else None,
        "windows": window_info,
        "build": build,
        "map": _map_entry(gen),
        "files": _file_entries(gen, files),
    }


def derive_generation(root: Path, handle: IndexHandle, atlas: Any) -> Path:
    """A new generation holding the served one's papers with a new map, switched to.

    Call inside `writer_lock(root)` with a handle opened (and verified) there. The data
    files are hard links to the served generation's (copies where the file system cannot
    link), so a map costs no second copy of the index and no served file ever changes.
    """
    with _new_generation(root) as gen:
        names = [n for n in handle.manifest["files"] if not n.startswith(f"{MAP_DIR}/")]
        for name in names:
            source, target = handle.generation / name, gen / name
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        write_atlas(gen, atlas)
        manifest = dict(handle.manifest)
        manifest["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        manifest["map"] = _map_entry(gen)
        files = {name: handle.manifest["files"][name] for name in names}
        manifest["files"] = {**files, **_file_entries(gen, _map_files(gen))}
        _write_atomic(gen / MANIFEST, json.dumps(manifest, indent=2).encode())
        _switch(root, gen)
    return gen


def write_atlas(gen: Path, atlas: Any) -> None:
    """Store a map (indexer.atlas.Atlas) in a generation, replacing any earlier one whole."""
    tmp = gen / f".{MAP_DIR}-{secrets.token_hex(3)}"
    tmp.mkdir()
    _write_vectors(tmp / "coords.npy", np.ascontiguousarray(atlas.coords, dtype=np.float32))
    _write_vectors(tmp / "clusters.npy", np.ascontiguousarray(atlas.clusters, dtype=np.int32))
    meta = {"labels": atlas.labels, "terms": atlas.terms, "info": atlas.info,
            "files": {name: (tmp / name).stat().st_size for name in ("coords.npy", "clusters.npy")}}
    _write_atomic(tmp / ATLAS_JSON, json.dumps(meta, indent=1, ensure_ascii=False).encode())
    target = gen / MAP_DIR
    old = gen / f".{MAP_DIR}-old-{secrets.token_hex(3)}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_path(gen)
    shutil.rmtree(old, ignore_errors=True)


def read_atlas(gen: Path, count: int) -> Any:
    """The generation's map (indexer.atlas.Atlas), or None when it has none.

    Raises IndexCorrupt when the map's files do not agree with each other or the index.
    """
    from indexer.atlas import Atlas

    folder = gen / MAP_DIR
    try:
        meta = json.loads((folder / ATLAS_JSON).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"{folder / ATLAS_JSON}: not valid JSON ({e})") from None
    except OSError as e:
        raise IndexCorrupt(f"{folder}: unreadable map ({e.strerror})") from None
    try:
        coords = np.load(folder / "coords.npy", allow_pickle=False)
        clusters = np.load(folder / "clusters.npy", allow_pickle=False)
        labels, terms = list(meta["labels"]), [list(t) for t in meta["terms"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IndexCorrupt(f"{folder}: unreadable map ({e}); run `papersift map` again") from None
    if (coords.shape != (count, 2) or clusters.shape != (count,) or len(labels) != len(terms)
            or (count and (clusters.min() < 0 or clusters.max() >= len(labels)))):
        raise IndexCorrupt(f"{folder}: map of shape {coords.shape} with {len(labels)} clusters "
                           f"does not fit {count} papers; run `papersift map` again")
    return Atlas(coords.astype(np.float32), clusters.astype(np.int32), labels, terms,
                 dict(meta.get("info", {})))


# ---------------------------------------------------------------- reading


class PaperTable:
    """Read-only access to a generation's metadata, safe to share between threads."""

    _COLUMNS = (
        "row, id, title, abstract, authors, categories, primary_category, published, url, "
        "upvotes, num_comments, keywords, version, content_hash"
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        uri = f"file:{path}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise IndexCorrupt(f"{self.path}: {e}") from None

    def count(self) -> int:
        return self._query("SELECT count(*) FROM papers")[0][0]

    @staticmethod
    def _paper(r: tuple) -> Paper:
        return Paper(
            id=r[1], title=r[2], abstract=r[3], authors=tuple(json.loads(r[4])),
            categories=tuple(json.loads(r[5])), primary_category=r[6], published=r[7],
            url=r[8], upvotes=r[9], num_comments=r[10], keywords=tuple(json.loads(r[11])),
            version=r[12], content_hash=r[13],
        )

    def papers(self, rows: Sequence[int]) -> dict[int, Paper]:
        """Papers by row number; rows that do not exist are absent."""
        found: dict[int, Paper] = {}
        rows = [int(r) for r in rows]
        for start in range(0, len(rows), 900):
            chunk = rows[start : start + 900]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {self._COLUMNS} FROM papers WHERE row IN ({marks})"
            for r in self._query(sql, chunk):
                found[r[0]] = self._paper(r)
        return found

    def all_papers(self) -> list[Paper]:
        """Every paper in row order."""
        rows = self._query(f"SELECT {self._COLUMNS} FROM papers ORDER BY row")
        return [self._paper(r) for r in rows]

    def published_dates(self) -> np.ndarray:
        """Every paper's date as an int32 YYYYMMDD in row order (0 where unknown)."""
        rows = self._query("SELECT CAST(replace(published, '-', '') AS INTEGER) FROM papers "
                           "ORDER BY row")
        return np.fromiter((r[0] or 0 for r in rows), dtype=np.int32, count=len(rows))

    def upvote_counts(self) -> np.ndarray:
        """Every paper's upvotes as int64 in row order (-1 where the source has none)."""
        rows = self._query("SELECT coalesce(upvotes, -1) FROM papers ORDER BY row")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def category_rows(self, category: str) -> np.ndarray:
        """Sorted int64 rows of the papers in one category (the table's primary key order)."""
        rows = self._query("SELECT row FROM paper_categories WHERE category = ? ORDER BY row",
                           (category,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def titles(self) -> list[tuple[int, str]]:
        """(row, title) of every paper."""
        return [(r, t) for r, t in self._query("SELECT row, title FROM papers ORDER BY row")]

    def row_of(self, paper_id: str) -> int | None:
        result = self._query("SELECT row FROM papers WHERE id = ?", (paper_id,))
        return result[0][0] if result else None

    def categories(self) -> list[tuple[str, int]]:
        """Every category with its paper count, most common first."""
        sql = "SELECT category, count(*) FROM paper_categories GROUP BY category ORDER BY 2 DESC"
        return [(c, n) for c, n in self._query(sql)]

    def date_range(self) -> tuple[str, str]:
        lo, hi = self._query("SELECT min(published), max(published) FROM papers "
                             "WHERE published != ''")[0]
        return lo or "", hi or ""

    def rows_matching(
        self,
        since: str = "",
        until: str = "",
        categories: Sequence[str] = (),
        author: str = "",
    ) -> np.ndarray:
        """Sorted int64 rows of papers passing every given filter."""
        where, params = [], []
        if since:
            where.append("published >= ?")
            params.append(since)
        if until:
            where.append("published != '' AND published <= ?")
            params.append(until)
        if author and not self.has_author_index:  # written by an older papersift
            where.append("authors LIKE ? ESCAPE '\\'")
            escaped = author.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        if categories:
            marks = ",".join("?" * len(categories))
            where.append(f"row IN (SELECT row FROM paper_categories WHERE category IN ({marks}))")
            params.extend(categories)
        if author and self.has_author_index and not where:
            return self.author_rows(author)
        sql = "SELECT row FROM papers" + (" WHERE " + " AND ".join(where) if where else "")
        rows = np.array([r[0] for r in self._query(sql + " ORDER BY row", params)], dtype=np.int64)
        if author and self.has_author_index:
            rows = np.intersect1d(rows, self.author_rows(author))
        return rows

    @cached_property
    def has_author_index(self) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE name = 'author_postings'"))

    def _postings(self, part: str) -> np.ndarray:
        found = self._query("SELECT codes FROM author_postings WHERE part = ?", (part,))
        if not found:
            return np.zeros(0, dtype=np.int64)
        blob = found[0][0]
        if not isinstance(blob, bytes) or len(blob) % 8:
            raise IndexCorrupt(f"{self.path}: damaged author postings for {part!r}")
        return np.frombuffer(blob, dtype="<i8").astype(np.int64, copy=False)

    def author_rows(self, author: str) -> np.ndarray:
        """Sorted int64 rows of papers with an author whose name has every part of `author`
        (folded: "muller" finds "Müller", "Li" finds "Li Wei" and "Wei Li" but not
        "Oliver"). A one-letter part is an initial ("J Smith", "J. Smith" find "John
        Smith"); in a query of two parts or more, a name stored with an initial ("J.
        Smith") matches a full first name ("John Smith") as long as one part of the query
        matches in full."""
        parts = list(dict.fromkeys(name_parts(author)))
        if not parts:
            return np.zeros(0, dtype=np.int64)
        keys = {k for p in parts for k in _match_keys(p, len(parts))}
        marks = ",".join("?" * len(keys))
        sizes = dict(self._query(f"SELECT part, n FROM author_postings WHERE part IN ({marks})",
                                 sorted(keys)))  # n, not length(codes): that reads the BLOB
        # start from the part with the fewest authors; the others only test membership
        order = sorted(parts, key=lambda p: sum(sizes.get(k, 0) for k in _match_keys(p, len(parts))))
        codes = None
        full = None  # whether each candidate matched some query part in full
        for part in order:
            exact, loose = _match_keys(part, len(parts), split=True)
            if codes is None:
                lists = {k: self._postings(k) for k in exact + loose}
                found = [f for f in lists.values() if len(f)]
                codes = (found[0] if len(found) == 1 else  # one posting is sorted, unique
                         np.unique(np.concatenate(found or [np.zeros(0, np.int64)])))
                full = (np.ones(len(codes), bool) if exact and len(lists[exact[0]]) == len(codes)
                        else _member(codes, [lists[k] for k in exact]))
                continue
            hit_exact = _member(codes, [self._postings(k) for k in exact])
            keep = hit_exact | _member(codes, [self._postings(k) for k in loose])
            codes, full = codes[keep], (full | hit_exact)[keep]
            if len(codes) == 0:
                break
        rows = codes[full] // AUTHOR_SLOTS  # sorted: codes are
        return rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows

    def exact_author_rows(self, rows: np.ndarray, author: str) -> np.ndarray:
        """The rows among `rows` with an author whose name is exactly `author` (folded:
        "Muller" is "Müller"; "Wei Li" is not "Li Wei" nor "Wei Li Chen")."""
        wanted = name_parts(author)
        keep = []
        for start in range(0, len(rows), 900):
            chunk = [int(r) for r in rows[start : start + 900]]
            marks = ",".join("?" * len(chunk))
            for row, names in self._query(f"SELECT row, authors FROM papers WHERE row IN ({marks})",
                                          chunk):
                if any(name_parts(n) == wanted for n in json.loads(names)):
                    keep.append(row)
        return np.asarray(sorted(keep), dtype=np.int64)

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(eq=False)
class IndexHandle:
    """An opened generation: manifest, metadata, vectors (memory-mapped) and FAISS index.

    It leases its generation (no writer removes it) until `close` or until it is garbage
    collected; a superseded generation is removed when its last reader lets go.
    """

    root: Path
    generation: Path
    manifest: dict[str, Any]
    papers: PaperTable
    vectors: np.ndarray
    faiss_index: Any
    lexical: Any = None  # a bm25s retriever, or None for an index built without one
    windows: np.ndarray | None = None  # passage-window vectors (memory-mapped), or None
    window_ptr: np.ndarray | None = None  # paper r's windows: rows ptr[r]:ptr[r + 1]

    def __post_init__(self) -> None:
        self._lease: weakref.finalize | None = None

    def hold(self, fd: int) -> None:
        """Keep the lease `fd` until `close` or garbage collection."""
        self._lease = weakref.finalize(self, release_generation, self.root, self.generation, fd)

    def close(self) -> None:
        """Close the metadata and release the lease (the handle must not be used after)."""
        self.papers.close()
        if self._lease is not None:
            self._lease()

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def model(self) -> ModelInfo:
        return ModelInfo.recorded(self.manifest)

    def size_bytes(self) -> int:
        return sum(f["size"] for f in self.manifest["files"].values())


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value: Any, low: int = 0) -> bool:
    return type(value) is int and value >= low


def check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    """The manifest, after checking every field papersift reads: present, typed and in
    range. Anything else is a one-line IndexCorrupt naming the file and the field."""
    def bad(field: str, why: str) -> IndexCorrupt:
        return IndexCorrupt(f"{path}: field {field!r} {why}; run `papersift info --verify` "
                            "or build the index again")

    if not isinstance(manifest, dict):
        raise IndexCorrupt(f"{path}: not a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IndexCorrupt(f"{path}: schema version {version!r}, this papersift reads "
                           f"{SCHEMA_VERSION}")
    model = manifest.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("name"), str)
            and isinstance(model.get("fingerprint"), str)):
        raise bad("model", "must hold a name and a fingerprint")
    for key in ("created", "papersift_version", "metric"):
        if not isinstance(manifest.get(key), str):
            raise bad(key, "must be a string")
    if not isinstance(manifest.get("normalized"), bool):
        raise bad("normalized", "must be true or false")
    for key, low in (("dim", 1), ("count", 0)):
        if not _is_int(manifest.get(key), low):
            raise bad(key, f"must be an integer >= {low}, got {manifest.get(key)!r}")
    if manifest.get("vector_dtype", "float32") not in ("float16", "float32"):
        raise bad("vector_dtype", "must be float16 or float32")
    faiss_info = manifest.get("faiss")
    if (not isinstance(faiss_info, dict) or not isinstance(faiss_info.get("exact", True), bool)
            or not isinstance(faiss_info.get("type"), str)):
        raise bad("faiss", "must describe the FAISS index")
    for key in ("nprobe", "nlist", "trained_on", "refine"):
        if key in faiss_info and not _is_int(faiss_info[key], 1):
            raise bad(f"faiss.{key}", "must be a positive integer")
    if "refine" in faiss_info and faiss_info["refine"] > 64:
        raise bad("faiss.refine", "must be at most 64")
    guard = faiss_info.get("recall_guard")
    if guard is not None and not (isinstance(guard, dict) and isinstance(guard.get("queries"), str)
                                  and _is_int(guard.get("sample"), 0)):
        raise bad("faiss.recall_guard", "must name its queries and their number")
    if not isinstance(faiss_info.get("codes", ""), str):
        raise bad("faiss.codes", "must be a string")
    for key in ("lexical", "build", "map"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise bad(key, "must be an object or null")
    mp = manifest.get("map")
    if mp is not None:
        seed, k = mp.get("seed"), mp.get("clusters")
        if not (type(seed) is int and 0 <= seed < 2**32) or (k is not None and not _is_int(k, 1)) \
                or mp.get("method", "auto") not in ("auto", "umap", "pca"):
            raise bad("map", "must hold a seed (0..2^32-1), clusters and a layout method")
    build = manifest.get("build")
    if build is not None and (build.get("index_type", "auto") not in ("auto", "flat", "ivf")
                              or not isinstance(build.get("float16", False), bool)):
        raise bad("build", "must hold an index type (auto, flat, ivf) and float16")
    if build is not None and not isinstance(build.get("ray") or {}, dict):
        raise bad("build.ray", "must be an object or null")
    windows = manifest.get("windows")
    if windows is not None and not (isinstance(windows, dict)
                                    and _is_int(windows.get("count"), 0)):
        raise bad("windows", "must hold a window count")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise bad("files", "must list the generation's files")
    for name, entry in files.items():
        parts = Path(name).parts
        if (not name or Path(name).is_absolute() or ".." in parts or "\0" in name
                or not isinstance(entry, dict) or not _is_int(entry.get("size"), 0)
                or not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"])):
            raise bad(f"files.{name[:60]}", "must be a relative file with a size and sha256")
    if missing := [n for n in DATA_FILES if n not in files]:
        raise bad("files", f"does not list {', '.join(missing)}")
    return manifest


def _load_manifest(gen: Path) -> dict[str, Any]:
    path = gen / MANIFEST
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{path}: missing; {_recovery_hint(gen.parent)}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise IndexCorrupt(f"{path}: not valid JSON ({str(e)[:120]})") from None
    except OSError as e:
        raise IndexCorrupt(f"{path}: unreadable ({e.strerror})") from None
    return check_manifest(path, manifest)


def read_manifest(root: Path) -> tuple[Path, dict[str, Any]]:
    """The current generation's folder and manifest, its fields checked (not its files)."""
    root = Path(root)
    check_folder(root)
    if not root.is_dir():
        raise IndexNotFound(f"no index at {root}")
    gen = current_generation(root)
    if gen is None:
        hint = f"; {_recovery_hint(root)}" if generations(root) else ""
        raise IndexNotFound(f"no index at {root} (no {CURRENT} file{hint})")
    if not gen.is_dir():
        raise IndexCorrupt(f"{root / CURRENT}: names {gen.name}, which does not exist; "
                           f"{_recovery_hint(root)}")
    return gen, _load_manifest(gen)


def check_model(root: Path, manifest: dict[str, Any], model: ModelInfo) -> None:
    """Refuse a configured model other than the one that built the index."""
    built = manifest["model"]
    if built["fingerprint"] == IMPORTED:  # only the name is known: it must match
        same = built["name"] == model.name
    else:
        same = built["fingerprint"] == model.fingerprint
    if not same or int(manifest["dim"]) != model.dim:
        raise ModelMismatch(
            f"{root}: index was built with model {built['name']} (weights "
            f"{built['fingerprint'][:12]}, dim {manifest['dim']}) but the configured model "
            f"is {model.name} (weights {model.fingerprint[:12]}, dim {model.dim}); "
            f"pass --model {built['name']} or rebuild the index"
        )


def _check_files(gen: Path, manifest: dict[str, Any], verify: bool) -> None:
    for name, expected in manifest["files"].items():
        path = gen / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexCorrupt(f"{path}: missing (listed in {MANIFEST})") from None
        if size != expected["size"]:
            raise IndexCorrupt(
                f"{path}: {size} bytes but {MANIFEST} says {expected['size']} (truncated?)"
            )
        if verify and (digest := sha256_of(path)) != expected["sha256"]:
            raise IndexCorrupt(
                f"{path}: sha256 {digest[:16]}… but {MANIFEST} says {expected['sha256'][:16]}…"
            )


def open_index(root: Path, model: ModelInfo | None = None, verify: bool = False) -> IndexHandle:
    """Open the current generation read-only after checking it against its manifest.

    Args:
        root: the index folder.
        model: the configured model; None skips the model check (stored vectors only).
        verify: also compare every file's sha256 (slower: reads every byte).

    Raises:
        IndexNotFound, IndexCorrupt, ModelMismatch: with the file and both values.
    """
    root = Path(root)
    check_folder(root)
    if not root.is_dir():
        raise IndexNotFound(f"no index at {root}")
    gen, lease = _lease(root)
    try:
        handle = _open_generation(root, gen, model, verify)
    except BaseException:
        os.close(lease)
        raise
    handle.hold(lease)
    return handle


def _open_generation(root: Path, gen: Path, model: ModelInfo | None, verify: bool) -> IndexHandle:
    manifest = _load_manifest(gen)
    if model is not None:
        check_model(root, manifest, model)
    _check_files(gen, manifest, verify)
    count, dim = int(manifest["count"]), int(manifest["dim"])
    papers = PaperTable(gen / PAPERS_DB)
    try:
        return _open_parts(root, gen, manifest, papers, count, dim)
    except BaseException:
        papers.close()
        raise


def _open_parts(root, gen, manifest, papers, count, dim) -> IndexHandle:
    if (rows := papers.count()) != count:
        raise IndexCorrupt(f"{gen / PAPERS_DB}: {rows} papers but {MANIFEST} says {count}")
    try:
        vectors = np.load(gen / VECTORS, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise IndexCorrupt(f"{gen / VECTORS}: {e}") from None
    dtype = manifest.get("vector_dtype", "float32")
    if vectors.shape != (count, dim) or vectors.dtype != np.dtype(dtype):
        raise IndexCorrupt(
            f"{gen / VECTORS}: shape {vectors.shape} {vectors.dtype} but {MANIFEST} says "
            f"({count}, {dim}) {dtype}"
        )
    try:  # memory-mapped: opening a 1.5 GB flat index costs no read (0.01 against 0.1 s at 80k)
        index = faiss.read_index(str(gen / FAISS_INDEX), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
    except RuntimeError as e:
        raise IndexCorrupt(f"{gen / FAISS_INDEX}: unreadable ({str(e).splitlines()[0]})") from None
    try:
        ann.configure(index, manifest["faiss"])
    except RuntimeError as e:  # e.g. an nprobe for an index that is not IVF
        raise IndexCorrupt(f"{gen / MANIFEST}: its faiss fields do not fit {gen / FAISS_INDEX} "
                           f"({str(e).splitlines()[0][:120]})") from None
    if index.ntotal != count or index.d != dim:
        raise IndexCorrupt(
            f"{gen / FAISS_INDEX}: {index.ntotal} vectors of dim {index.d} but {MANIFEST} says "
            f"{count} of dim {dim}"
        )
    bm25 = None
    if manifest.get("lexical"):
        try:
            bm25 = lexical.load(gen / BM25_DIR)
        except (OSError, ValueError, KeyError) as e:
            raise IndexCorrupt(f"{gen / BM25_DIR}: unreadable BM25 index ({e})") from None
        lexical.check(bm25, count, gen / BM25_DIR)
    windows, window_ptr = _open_windows(gen, manifest, count, dim)
    return IndexHandle(root, gen, manifest, papers, vectors, index, bm25, windows, window_ptr)


def repair(root: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """Point `CURRENT` at the newest generation that passes every check (each file's
    sha256 included); nothing is deleted. A `CURRENT` naming a sound generation is left
    as it is. Returns (the generation served, the newer ones skipped with why).

    Raises:
        IndexNotFound: no generation folder at all.
        IndexCorrupt: none of them is sound.
    """
    root = Path(root)
    check_folder(root)
    if not root.is_dir():
        raise IndexNotFound(f"no index at {root}")
    skipped: list[tuple[Path, str]] = []
    with writer_lock(root):
        try:
            current = current_generation(root)
        except IndexCorrupt:
            current = None
        found = generations(root)
        if current is not None and current in found:
            found = [current] + [g for g in found if g != current]  # keep it when sound
        if not found:
            raise IndexNotFound(f"no generation folders in {root}; build the index again")
        for gen in found:
            try:
                fd = os.open(gen, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as e:
                skipped.append((gen, f"{gen}: cannot open ({e.strerror})"))
                continue
            try:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_SH)  # nobody removes it while it is checked
                handle = _open_generation(root, gen, None, verify=True)
                handle.papers.close()
                if gen != current:
                    _switch(root, gen)
                return gen, skipped
            except (PapersiftError, OSError) as e:
                skipped.append((gen, str(e)))
            finally:
                os.close(fd)
    raise IndexCorrupt(f"{root}: none of its {len(found)} generations is sound ("
                       + "; ".join(why for _, why in skipped[:3]) + "); build the index again")


def _open_windows(gen: Path, manifest: dict[str, Any], count: int, dim: int):
    info = manifest.get("windows")
    if not info:
        return None, None
    from indexer.windows import pointers

    try:
        n = int(info["count"])
        vectors = np.load(gen / WINDOWS, mmap_mode="r", allow_pickle=False)
        owners = np.load(gen / WINDOW_OWNERS, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IndexCorrupt(f"{gen / WINDOWS}: unreadable windows ({e})") from None
    if (vectors.shape != (n, dim) or vectors.dtype != np.float16 or owners.shape != (n,)
            or (n and (owners[0] < 0 or owners[-1] >= count or np.any(np.diff(owners) < 0)))):
        raise IndexCorrupt(f"{gen / WINDOWS}: {vectors.shape} {vectors.dtype} windows with "
                           f"{owners.shape} owners do not fit {MANIFEST} ({n} float16 windows "
                           f"of dim {dim}, owners ascending below {count})")
    return vectors, pointers(owners.astype(np.int64), count)
