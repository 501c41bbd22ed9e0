"""Cutting an index into shards that together answer exactly as the whole index does.

`write_shards` splits the served generation of an index into N contiguous row ranges and
writes each as a complete index of its own (`shard-000`, `shard-001`, ... in one folder):
papers, vectors, passage windows and a FAISS index of its rows, and a BM25 index whose
postings are the whole index's cut to those rows (`lexical.cut`), carrying the whole
corpus's statistics (paper count, document frequencies, each term's best score). A paper's
cosine and BM25 score are therefore the same in its shard as in the whole index, and so
are each query's BM25 ceiling and IDF features: merging the shards' candidates
(search/sharded.py) gives the single index's ranking.

Each shard's manifest records which part it is (`shard`: index, of, first and end row,
total papers, and the id of the sharding run), so a set mixed from two runs is refused
(`read_set`). A set is written whole into a new folder: it appears only when complete.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import lexical
from indexer.errors import IndexCorrupt, IndexNotFound, PapersiftError
from indexer.store import _try_exclusive, open_index, read_manifest, write_generation, writer_lock

PREFIX = "shard-"


def shard_name(i: int) -> str:
    return f"{PREFIX}{i:03d}"


def bounds(count: int, shards: int) -> list[tuple[int, int]]:
    """[first, end) rows of each shard: contiguous, sizes differing by at most one."""
    edges = [count * i // shards for i in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def write_shards(index: str | Path, shards: int, out: str | Path,
                 on_shard: Callable[[int, Path], None] | None = None) -> list[Path]:
    """Write the index's served generation as `shards` shard indexes in the new folder `out`.

    The shards are written into a hidden folder beside `out` and renamed to `out` once all
    are complete, so `out` never holds part of a set: a run cut short (kill -9, a full
    disk) leaves nothing there, and its hidden leftover is removed by the next run.
    Returns the shard folders.

    Raises:
        PapersiftError: fewer papers than shards, `out` inside the index (or the index
            inside `out`), or `out` already holding files.
    """
    index, out = Path(index), Path(out)
    if shards < 1:
        raise PapersiftError(f"--shards must be at least 1, got {shards}")
    source, target = index.resolve(), out.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise PapersiftError(f"{out}: the shards must go outside the index folder {index} "
                             "(and not around it)")
    if out.is_symlink() or (out.exists() and os.path.ismount(out)):
        raise PapersiftError(f"{out} is a link or a mount point: give a new folder inside it "
                             "(the set is written beside that folder and renamed into place)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PapersiftError(f"{out} already exists and is not empty: write the shards into a "
                             "new folder (a server keeps serving the old one until restarted)")
    handle = open_index(index)
    run = secrets.token_hex(8)
    staging = out.parent / f".{out.name}.writing-{run}"
    held = None
    try:
        count = handle.count
        if count < shards:
            raise PapersiftError(f"{index} holds {count} papers: too few for {shards} shards")
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}.writing-*"):
            fd = _try_exclusive(stale)
            if fd is not None:  # a run cut short (a running one holds its lock)
                try:
                    shutil.rmtree(stale, ignore_errors=True)
                finally:
                    os.close(fd)
        staging.mkdir()
        held = _try_exclusive(staging)  # until the set is in place or removed
        papers = handle.papers.all_papers()
        built = handle.manifest.get("build") or {}
        from indexer.build import probe_encoder

        probe_encode = probe_encoder(None, handle.model)  # one model for every shard's guard
        for i, (first, end) in enumerate(bounds(count, shards)):
            windows = None
            if handle.windows is not None:
                lo, hi = int(handle.window_ptr[first]), int(handle.window_ptr[end])
                owners = np.repeat(np.arange(end - first, dtype=np.int64),
                                   np.diff(handle.window_ptr[first:end + 1]))
                windows = (np.asarray(handle.windows[lo:hi]), owners)
            part = lexical.cut(handle.lexical, first, end) if handle.lexical is not None else None
            root = staging / shard_name(i)
            with writer_lock(root):
                write_generation(
                    root, papers[first:end], np.asarray(handle.vectors[first:end], np.float32),
                    handle.model, built.get("index_type") or "auto", bool(built.get("float16")),
                    with_lexical=part is not None, windows=windows, lexical_index=part,
                    vectors_name=built.get("vectors"), probe_encode=probe_encode,
                    shard={"index": i, "of": shards, "first": first, "end": end, "total": count,
                           "run": run, "source": str(source),
                           "generation": handle.generation.name})
            if on_shard:
                on_shard(i, root)
        try:
            os.rename(staging, out)  # replaces an empty `out`; fails if one filled meanwhile
        except OSError as e:
            raise PapersiftError(f"{out}: could not put the shards there ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        handle.close()
        if held is not None:
            os.close(held)
    return [out / shard_name(i) for i in range(shards)]


@dataclass(frozen=True)
class ShardInfo:
    """One shard of a set, as its manifest describes it."""

    root: Path
    index: int
    of: int
    first: int
    end: int
    total: int
    run: str


def read_set(folder: str | Path) -> list[ShardInfo]:
    """The shards in `folder`, checked to form one complete set from one sharding run,
    in row order.

    Raises:
        IndexNotFound: no shard in the folder.
        IndexCorrupt: shards missing, from different runs, or with overlapping rows.
    """
    folder = Path(folder)
    roots = sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir())
    if not roots:
        raise IndexNotFound(f"no shards in {folder} (write them with `papersift shard`)")
    found = []
    for root in roots:
        manifest = read_manifest(root)[1]
        s = manifest.get("shard")
        if not (isinstance(s, dict) and all(type(s.get(k)) is int for k in
                                            ("index", "of", "first", "end", "total"))
                and isinstance(s.get("run"), str)):
            raise IndexCorrupt(f"{root}: not a shard (its manifest has no shard entry)")
        if s["end"] - s["first"] != manifest["count"]:
            raise IndexCorrupt(f"{root}: rows {s['first']}-{s['end']} but {manifest['count']} papers")
        found.append(ShardInfo(root, s["index"], s["of"], s["first"], s["end"], s["total"], s["run"]))
    runs = {s.run for s in found}
    if len(runs) > 1:
        raise IndexCorrupt(f"{folder}: shards from {len(runs)} different `papersift shard` runs; "
                           "write them again into one folder")
    of, total = found[0].of, found[0].total
    for s in found:
        if (s.of, s.total) != (of, total) or s.root.name != shard_name(s.index):
            raise IndexCorrupt(f"{s.root}: says it is shard {s.index} of {s.of} ({s.total} "
                               f"papers), which does not fit the set ({of} shards, {total} papers)")
    missing = sorted(set(range(of)) - {s.index for s in found})
    if missing or len(found) != of:
        raise IndexCorrupt(f"{folder}: {len(found)} of {of} shards present"
                           + (f" (missing {', '.join(shard_name(i) for i in missing)})"
                              if missing else ""))
    found.sort(key=lambda s: s.first)
    edge = 0
    for s in found:
        if s.first != edge:
            raise IndexCorrupt(f"{s.root}: starts at row {s.first}, expected {edge}")
        edge = s.end
    if edge != found[0].total:
        raise IndexCorrupt(f"{folder}: the shards hold {edge} papers of {found[0].total}")
    return found
