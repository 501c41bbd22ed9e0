"""Incremental update: merge new records into the served index, embedding only what changed.

A paper whose title and abstract hash is unchanged keeps its stored vector (its upvotes,
comments and other metadata still refresh); a new or changed paper is encoded; an older
arXiv version than the stored one is ignored. The result is a new generation switched
atomically, so readers keep answering from the old one until the switch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer import atlas, windows
from indexer.build import (
    PhaseFn,
    ProgressFn,
    _imported,
    build_index,
    collect_papers,
    encode_papers,
    load_model,
    probe_encoder,
)
from indexer.encoder import Encoder
from indexer.errors import IndexNotFound, InvalidQuery, PapersiftError
from indexer.readers import Problem
from indexer.records import Paper, canonical_id, is_arxiv_id
from indexer.store import (
    IMPORTED,
    MAP_DIR,
    ModelInfo,
    check_model,
    fetch_dir,
    generations,
    open_index,
    read_manifest,
    remove_leftovers,
    write_generation,
    writer_lock,
)

SINGLE_PAPER_BYTES = 2_000_000  # one paper's Atom feed is a few KB
SINGLE_PAPER_SECONDS = 30.0


@dataclass(frozen=True)
class UpdateReport:
    """What an update did. `encoded` counts the papers that went through the model."""

    added: int
    changed: int
    refreshed: int
    unchanged: int
    older_ignored: int
    skipped: int
    encoded: int
    total: int
    seconds: float
    generation: Path


def merge(old: Paper, new: Paper) -> Paper | None:
    """The paper to keep when `new` arrives for a stored `old`; None keeps `old` as it is.

    The newer record wins field by field; fields it lacks (categories from a Hugging Face
    record, upvotes from an arXiv one) are kept from the stored paper.
    """
    if old.version and new.version and new.version < old.version:
        return None
    return replace(
        new,
        authors=new.authors or old.authors,
        categories=new.categories or old.categories,
        primary_category=new.primary_category or old.primary_category,
        published=new.published or old.published,
        url=new.url or old.url,
        upvotes=new.upvotes if new.upvotes is not None else old.upvotes,
        num_comments=new.num_comments if new.num_comments is not None else old.num_comments,
        keywords=new.keywords or old.keywords,
        version=new.version or old.version,
    )


def update_index(
    paths: Sequence[str | Path],
    root: str | Path,
    encoder: Encoder | None,
    *,
    strict: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: ProgressFn | None = None,
    vectors_path: str | Path | None = None,
    on_phase: PhaseFn | None = None,
) -> UpdateReport:
    """Merge the papers in `paths` into the index at `root`.

    A folder with no index at all is built from them. A folder whose `CURRENT` is missing
    or damaged while generations exist is refused (`papersift repair` recovers it): an
    update never starts a new index from the update's papers alone. The served generation
    is verified (every file's sha256) before anything is copied from it, and the build
    choices in its manifest (index type, float16, windows, map options) are kept. An
    index of imported vectors needs `vectors_path`: one row per record of `paths`.
    `on_phase` and `on_progress` report as for `build_index`.
    """
    started = time.perf_counter()
    root = Path(root)
    with writer_lock(root):  # decided under the lock: a build finishing meanwhile counts
        try:
            read_manifest(root)
        except IndexNotFound:
            if generations(root):
                raise
            report = build_index(paths, root, encoder, strict=strict, on_problem=on_problem,
                                 on_progress=on_progress, on_phase=on_phase,
                                 vectors_path=vectors_path,
                                 model_name=getattr(encoder, "name", "") if vectors_path else "")
            return UpdateReport(report.papers, 0, 0, 0, 0, report.skipped, report.papers,
                                report.papers, report.seconds, report.generation)
        handle = open_index(root, verify=True)  # never copy a damaged generation forward
        remove_leftovers(root)
        try:
            return _update(paths, root, encoder, handle, strict, on_problem, on_progress,
                           on_phase, vectors_path, started)
        finally:
            handle.close()  # the writer's lease on the superseded generation: removed now


def _update(paths, root, encoder, handle, strict, on_problem, on_progress, on_phase,
            vectors_path, started) -> UpdateReport:
    phase = on_phase or (lambda name: None)
    manifest = handle.manifest
    build = manifest.get("build") or {}
    imported = manifest["model"]["fingerprint"] == IMPORTED
    if imported and vectors_path is None:
        raise PapersiftError(
            f"{root}: its vectors were imported (model {manifest['model']['name']}); pass "
            "--vectors FILE.npy with one row per input record for the new papers")
    if vectors_path is not None:
        if not imported:
            raise PapersiftError(f"{root}: its vectors come from model "
                                 f"{manifest['model']['name']}; --vectors only extends an "
                                 "index built from imported vectors")
        incoming, given, _ = _imported(paths, Path(vectors_path), on_problem)
        if given.shape[1] != handle.vectors.shape[1]:
            raise PapersiftError(f"{vectors_path}: vectors of dim {given.shape[1]} but the "
                                 f"index holds dim {handle.vectors.shape[1]}")
        given_of = {p.id: given[i] for i, p in enumerate(incoming)}
        problems: list[Problem] = []
    else:
        if encoder is None:
            raise PapersiftError("an update needs the model to encode new papers")
        load_model(encoder, 0, on_phase)  # checking the model's weights loads it
        check_model(root, manifest, ModelInfo.of(encoder))
        incoming, problems, _ = collect_papers(paths, strict, on_problem)
    if not incoming:
        names = ", ".join(map(str, paths))
        raise PapersiftError(f"no valid papers in {names} ({len(problems)} bad lines)")
    papers = handle.papers.all_papers()
    vectors = np.array(handle.vectors, dtype=np.float32)  # a private copy
    row_of = {p.id: row for row, p in enumerate(papers)}
    to_encode: list[int] = []
    added = changed = refreshed = unchanged = older = 0
    for paper in incoming:
        row = row_of.get(paper.id)
        if row is None:
            row_of[paper.id] = len(papers)
            papers.append(paper)
            to_encode.append(row_of[paper.id])
            added += 1
            continue
        merged = merge(papers[row], paper)
        if merged is None:
            older += 1
        elif merged.content_hash != papers[row].content_hash:
            papers[row] = merged
            to_encode.append(row)
            changed += 1
        elif merged != papers[row]:
            papers[row] = merged
            refreshed += 1
        else:
            unchanged += 1
    if added + changed + refreshed == 0:  # nothing new: keep serving what is there
        return UpdateReport(0, 0, 0, unchanged, older, len(problems), 0, len(papers),
                            time.perf_counter() - started, handle.generation)
    fresh_windows = None
    if vectors_path is not None:
        fresh = np.array([given_of[papers[r].id] for r in to_encode], dtype=np.float32)
    elif hasattr(encoder, "encode_many"):  # a cluster: papers and passages in one run
        phase("encoding")
        fresh, fresh_windows = windows.encode_with_papers(
            [papers[r] for r in to_encode], encoder, handle.windows is not None, on_progress)
    else:
        phase("encoding")
        fresh = encode_papers([papers[r] for r in to_encode], encoder, on_progress)
    vectors = np.vstack([vectors, np.zeros((added, vectors.shape[1]), np.float32)])
    if to_encode:
        vectors[to_encode] = fresh.reshape(len(to_encode), -1)
    passages = None
    if handle.windows is not None:  # an index with windows keeps them for every paper
        if fresh_windows is None:
            phase("encoding passages")
            fresh_windows = windows.encode([papers[r] for r in to_encode], encoder, on_progress)
        if fresh_windows is None:  # this encoder cannot cut windows: keep the old ones
            fresh_windows = (np.zeros((0, handle.windows.shape[1]), np.float16),
                             np.zeros(0, np.int64))
        owners = np.repeat(np.arange(handle.count), np.diff(handle.window_ptr))
        passages = windows.merge((handle.windows, owners), np.array(to_encode, dtype=np.int64),
                                 fresh_windows, to_encode)
    float16 = manifest.get("vector_dtype") == "float16"
    changed_rows = np.array(sorted(r for r in to_encode if r < handle.count), dtype=np.int64)
    reuse = (handle.faiss_index, manifest["faiss"], vectors, changed_rows, handle.count)
    # The index type as the user asked it; before the manifest said, an approximate index
    # stays approximate when it is retrained (it may have been forced).
    index_type = build.get("index_type") or ("auto" if manifest["faiss"].get("exact", True)
                                             else "ivf")
    remap = None
    if (handle.generation / MAP_DIR).is_dir():  # the map follows the papers, options kept
        map_options = atlas.options(manifest, handle.generation)

        def remap(new_gen: Path) -> None:
            atlas.map_generation(new_gen, vectors, papers, **map_options)

    phase("writing index")
    gen = write_generation(root, papers, vectors, handle.model, index_type,
                           float16=float16, reuse=reuse, before_switch=remap, windows=passages,
                           with_lexical=bool(manifest.get("lexical")),
                           vectors_name=Path(vectors_path).name if vectors_path else build.get("vectors"),
                           cluster=getattr(encoder, "cluster_info", None),
                           probe_encode=probe_encoder(encoder, handle.model))
    return UpdateReport(added, changed, refreshed, unchanged, older, len(problems),
                        len(to_encode), len(papers), time.perf_counter() - started, gen)



def add_arxiv_paper(index_root: str | Path, arxiv_id: str, encoder: Encoder, *,
                    client: Any = None, base_url: str | None = None,
                    attempts: int = 2) -> Paper:
    """Fetch one paper from arXiv and add it to the index, as `update --from arxiv` would.

    The id may be any form people paste (2401.00001v2, arXiv:2401.00001, an abs or pdf
    URL, hep-th/9901001); the newest version is fetched. A paper the index already has is
    returned without any request. Otherwise the paper is fetched, then the writer lock is
    taken and it goes in through `update_index`: a new generation, switched atomically.

    Args:
        index_root: the index folder.
        encoder: the index's model (the one `update` uses).
        client: the httpx.Client to use; None makes a polite one for this call.
        base_url: the arXiv API (`Settings.source_url("arxiv")`); None: arXiv's own.
        attempts: tries of the one request (throttling, 5xx, no connection).

    Returns:
        The paper as the index now stores it.

    Raises:
        InvalidQuery: not an arXiv id or URL, before any request.
        IndexLocked: another process is writing the index (after the request: the lock is
            held only while the paper is added).
        NotOnArxiv: arXiv has no such paper.
        Throttled: HTTP 429/503 (`retry_after`: when arXiv says to try again).
        Unreachable: no connection (offline).
        FetchError: any other failed request (HTTP 404, 5xx after `attempts`, an answer
            over SINGLE_PAPER_BYTES or not complete within SINGLE_PAPER_SECONDS).
        PapersiftError: as `update_index` (no index there, another model, ...).
        On any of these, nothing stored has changed.
    """
    from indexer.arxiv import ARXIV_API_URL, fetch_arxiv_paper
    from indexer.fetch import Polite, ResumableJsonl, make_client

    paper_id = canonical_id(arxiv_id) if isinstance(arxiv_id, str) else ""
    if not is_arxiv_id(paper_id):
        raise InvalidQuery(f"not an arXiv id or URL: {str(arxiv_id)[:80]!r} (like 2401.00001 "
                           "or https://arxiv.org/abs/2401.00001)", field="arxiv_id")
    root = Path(index_root)
    if (stored := _stored_paper(root, paper_id)) is not None:
        return stored
    # Fetched without the lock (a slow answer must not stop other writers), bounded in
    # size and time: one paper's feed is a few KB.
    with contextlib.nullcontext(client) if client is not None else make_client() as http:
        polite = Polite(http, attempts=attempts, backoff=3.0, max_wait=10.0,
                        max_bytes=SINGLE_PAPER_BYTES, max_seconds=SINGLE_PAPER_SECONDS)
        record = fetch_arxiv_paper(polite, paper_id, base_url or ARXIV_API_URL)
    with writer_lock(root):
        if (stored := _stored_paper(root, paper_id)) is not None:
            return stored  # added meanwhile (another session)
        sink = ResumableJsonl(fetch_dir(root) / f"arxiv-{paper_id.replace('/', '-')}.jsonl")
        sink.begin({"source": "arxiv", "id_list": paper_id})
        sink.checkpoint([record], {})
        fetched = sink.finish()
        try:
            update_index([fetched], root, encoder)
        finally:
            fetched.unlink(missing_ok=True)
    return _stored_paper(root, paper_id)


def _stored_paper(root: Path, paper_id: str) -> Paper | None:
    """The paper `paper_id` as the served generation stores it, or None."""
    handle = open_index(root)
    try:
        row = handle.papers.row_of(paper_id)
        return None if row is None else handle.papers.papers([row])[row]
    finally:
        handle.close()
