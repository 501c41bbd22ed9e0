"""Building an index: read input files, deduplicate, encode, write a generation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.encoder import Encoder
from indexer.errors import BadRecord, PapersiftError
from indexer.readers import Problem, read_papers
from indexer.records import Paper
from indexer.store import (
    IMPORTED,
    MAP_DIR,
    ModelInfo,
    read_manifest,
    write_generation,
    writer_lock,
)

ProgressFn = Callable[[int, int], None]
PhaseFn = Callable[[str], None]  # told each phase's name: "loading model", "encoding", ...
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    papers: int
    skipped: int
    duplicates: int
    seconds: float
    size_bytes: int
    generation: Path
    problems: list[Problem] = field(default_factory=list)
    map_seconds: float = 0.0  # part of `seconds` spent on the map, when one was made
    load_seconds: float = 0.0  # part of `seconds` spent loading the model
    encode_seconds: float = 0.0  # part of `seconds` spent encoding papers and passages


def collect_papers(
    paths: Iterable[str | Path],
    strict: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
) -> tuple[list[Paper], list[Problem], int]:
    """Read every file; a paper seen twice is stored once, the later record winning.

    Returns:
        (papers in first-seen order, problems, number of duplicate records replaced).

    Raises:
        BadRecord: in strict mode, at the first bad line.
    """
    by_id: dict[str, Paper] = {}
    problems: list[Problem] = []
    duplicates = 0
    for path in paths:
        for item in read_papers(path):
            if isinstance(item, Problem):
                if strict:
                    raise BadRecord(str(item))
                problems.append(item)
                if on_problem:
                    on_problem(item)
                continue
            if item.id in by_id:
                duplicates += 1
            by_id[item.id] = item
    return list(by_id.values()), problems, duplicates


def encode_papers(
    papers: Sequence[Paper],
    encoder: Encoder,
    on_progress: ProgressFn | None = None,
    chunk_size: int = 512,
) -> np.ndarray:
    """Encode papers' texts in length-sorted chunks (less padding); rows follow `papers`.

    An encoder with `encode_many(texts, on_progress)` (indexer/cluster.py) is handed every
    text at once: it cuts and schedules its own blocks.
    """
    texts = [p.text for p in papers]
    encode_many = getattr(encoder, "encode_many", None)
    if encode_many is not None:
        vectors = np.asarray(encode_many(texts, on_progress), dtype=np.float32)
    else:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)
        for start in range(0, len(texts), chunk_size):
            rows = order[start : start + chunk_size]
            vectors[rows] = encoder.encode([texts[i] for i in rows])
            if on_progress:
                on_progress(min(start + chunk_size, len(texts)), len(texts))
    if not np.isfinite(vectors).all():
        raise PapersiftError(f"model {encoder.name} produced non-finite vectors")
    return vectors


def load_model(encoder: Encoder, texts: int, on_phase: PhaseFn | None = None) -> float:
    """Load the encoder's model now, as the "loading model" phase, so that neither the
    progress bar nor papers/s counts the load as encoding; returns the seconds it took
    (0 for an encoder that has nothing to load, like the tests' fake one).

    Args:
        texts: how many texts will be encoded next (a large batch may need a backend
            prepared too, SentenceTransformerEncoder.load).
    """
    load = getattr(encoder, "load", None)
    if load is None:
        return 0.0
    if on_phase:
        on_phase("loading model")
    started = time.perf_counter()
    load(texts)
    return time.perf_counter() - started


def check_vectors(vectors: np.ndarray, rows: int, source: str) -> np.ndarray:
    """Validate imported embeddings (shape, finiteness, non-zero norm); returns unit rows."""
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise PapersiftError(f"{source}: expected a 2-D float array, got {vectors.ndim}-D "
                             f"{vectors.dtype}")
    if vectors.shape[0] != rows:
        raise PapersiftError(f"{source}: {vectors.shape[0]} vectors but {rows} paper records; "
                             "they must be row-aligned")
    vectors = np.asarray(vectors, dtype=np.float64)  # a float32 norm overflows above 1.8e19
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise PapersiftError(f"{source}: row {bad[0]} has NaN or infinite values "
                             f"({len(bad)} rows in all)")
    norms = np.linalg.norm(vectors, axis=1)
    if (zero := np.flatnonzero(~(norms >= 1e-6) | ~np.isfinite(norms))).size:
        raise PapersiftError(f"{source}: row {zero[0]} has zero or unmeasurable norm "
                             f"({zero.size} rows in all)")
    return (vectors / norms[:, None]).astype(np.float32)


def probe_encoder(encoder: Encoder | None, model: ModelInfo
                  ) -> Callable[[list[str]], np.ndarray | None] | None:
    """What encodes the recall guard's queries (indexer/ann.py `text_probe`): the encoder
    that made the vectors (a Ray encoder's local copy: 500 short texts need no cluster
    job); else the model the index names, if its files are on this machine (the packaged
    model or a model folder; never a download), loaded on torch only if an approximate
    index is tried, refused when its weights differ from the index's (imported vectors
    record none, only the name) or its dimension does; None (noisy-vector guard) otherwise."""
    if encoder is not None and model.fingerprint != IMPORTED:
        return getattr(encoder, "local", encoder).encode
    from indexer.query_encoder import local_folder

    if model.name in ("", "external") or local_folder(model.name) is None:
        return None
    loaded: list = []

    def encode(texts: list[str]) -> np.ndarray | None:
        if not loaded:
            loaded.append(_probe_model(model))
        return loaded[0].encode(texts) if loaded[0] is not None else None

    return encode


def _probe_model(model: ModelInfo):
    from indexer.encoder import SentenceTransformerEncoder

    try:  # torch: an OpenVINO model released mid-build once hung its process (thread join)
        found = SentenceTransformerEncoder(model.name, backend="torch")
        found.load(0)
        mismatch = found.dim != model.dim or (
            model.fingerprint != IMPORTED and found.fingerprint != model.fingerprint)
    except Exception as e:  # noqa: BLE001 - any failure to load means "no model here"
        log.warning("recall guard: model %s did not load (%s); using noisy vectors",
                    model.name, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
        return None
    if mismatch:
        log.warning("recall guard: model %s here is not the one of the vectors; using noisy "
                    "vectors", model.name)
        return None
    return found


def _imported(paths, vectors_path: Path, on_problem) -> tuple[list[Paper], np.ndarray, int]:
    """Papers and their precomputed vectors, row i of the file <-> i-th record of the input."""
    records: list[Paper] = []
    for path in paths:
        for item in read_papers(path):
            if isinstance(item, Problem):  # a skipped line would shift every later row
                raise BadRecord(f"{item} (every line must be a paper when --vectors is given)")
            records.append(item)
    try:
        raw = np.load(vectors_path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise PapersiftError(f"{vectors_path}: not a .npy array ({e})") from None
    vectors = check_vectors(raw, len(records), str(vectors_path))
    last = {p.id: i for i, p in enumerate(records)}  # a paper seen twice: the later row wins
    keep = sorted(last.values())
    return [records[i] for i in keep], vectors[keep], len(records) - len(keep)


def _check_words(papers: Sequence[Paper], paths) -> None:
    """Refuse, before any encoding, a corpus with no word keyword search could index."""
    from indexer import lexical

    if not lexical.has_words([p.text for p in papers]):
        names = ", ".join(str(p) for p in paths)
        raise PapersiftError(f"no indexable words in {names}: the {len(papers):,} papers' titles "
                             "and abstracts hold only stopwords and punctuation")


def _served_build(root: Path) -> dict:
    """The build choices the served generation recorded ({} when there is none)."""
    try:
        return read_manifest(root)[1].get("build") or {}
    except PapersiftError:
        return {}


def _served_map_options(root: Path) -> dict | None:
    """The map options of the served generation (None when it has no map, or when there
    is no sound served generation: a build over a damaged index starts afresh)."""
    from indexer import atlas

    try:
        gen, manifest = read_manifest(root)
    except PapersiftError:
        return None
    if not (gen / MAP_DIR).is_dir():
        return None
    return atlas.options(manifest, gen)


def build_index(
    paths: Sequence[str | Path],
    root: str | Path,
    encoder: Encoder | None,
    *,
    strict: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: ProgressFn | None = None,
    on_phase: PhaseFn | None = None,
    index_type: str | None = None,
    vectors_path: str | Path | None = None,
    model_name: str = "",
    float16: bool | None = None,
    with_map: bool | None = None,
    with_windows: bool = True,
) -> BuildReport:
    """Build a new generation of the index at `root` from input files and switch to it.

    The previous generation keeps serving until the switch; nothing is written when
    `strict` stops the build at a bad line. With `vectors_path` (a .npy row-aligned with
    the input records) nothing is encoded: the index records `model_name` as its model,
    and queries must then be encoded with that model. `with_map` also computes the map
    (indexer/atlas.py) before the new generation is served; None keeps a map when the
    served generation has one. `with_windows` also embeds passage windows of papers longer
    than one model input (indexer/windows.py) where the encoder can cut them.
    `index_type` and `float16` left as None keep the served generation's recorded choices
    ("auto" and float32 for a new index), as the map keeps its options. `on_phase` is
    told when loading the model, encoding, encoding passages and writing begin;
    `on_progress(done, total)` counts the papers (or passages) encoded.
    """
    started = time.perf_counter()
    root = Path(root)
    phase = on_phase or (lambda name: None)
    load_seconds = encode_seconds = 0.0
    passages = None
    with writer_lock(root):  # leftovers are removed once the new generation is served
        if vectors_path is not None:
            papers, vectors, duplicates = _imported(paths, Path(vectors_path), on_problem)
            problems: list[Problem] = []
            model = ModelInfo(model_name or "external", IMPORTED, vectors.shape[1])
            _check_words(papers, paths)
        else:
            papers, problems, duplicates = collect_papers(paths, strict, on_problem)
            if not papers:
                names = ", ".join(str(p) for p in paths)
                raise PapersiftError(f"no valid papers in {names} ({len(problems)} bad lines)")
            _check_words(papers, paths)
            load_seconds = load_model(encoder, len(papers), on_phase)
            encoding = time.perf_counter()
            from indexer import windows

            phase("encoding")
            if hasattr(encoder, "encode_many"):  # a cluster: papers and passages in one run
                vectors, passages = windows.encode_with_papers(papers, encoder, with_windows,
                                                               on_progress)
            else:
                vectors = encode_papers(papers, encoder, on_progress)
                if with_windows:
                    phase("encoding passages")
                    passages = windows.encode(papers, encoder, on_progress)
            encode_seconds = time.perf_counter() - encoding
            model = ModelInfo.of(encoder)
        phase("writing index")
        served = _served_build(root)
        if index_type is None:
            index_type = served.get("index_type") or "auto"
        if float16 is None:
            float16 = bool(served.get("float16", False))
        before_switch = None
        map_seconds: list[float] = []
        map_options = _served_map_options(root)
        if with_map is None:
            with_map = map_options is not None
        if with_map:
            from indexer.atlas import map_generation

            def before_switch(new_gen: Path) -> None:
                atlas = map_generation(new_gen, vectors, papers, **(map_options or {}))
                map_seconds.append(atlas.info["seconds"])

        gen = write_generation(root, papers, vectors, model, index_type, float16,
                               before_switch=before_switch, windows=passages,
                               vectors_name=Path(vectors_path).name if vectors_path else None,
                               cluster=getattr(encoder, "cluster_info", None),
                               probe_encode=probe_encoder(encoder, model))
    size = sum(f.stat().st_size for f in gen.rglob("*") if f.is_file())
    return BuildReport(
        papers=len(papers),
        skipped=len(problems),
        duplicates=duplicates,
        seconds=time.perf_counter() - started,
        size_bytes=size,
        generation=gen,
        problems=problems,
        map_seconds=sum(map_seconds),
        load_seconds=load_seconds,
        encode_seconds=encode_seconds,
    )
