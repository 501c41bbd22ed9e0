"""The search path's query encoder: OpenVINO and `tokenizers`, no torch, from a disk cache.

Loading torch and sentence-transformers takes most of a one-shot `papersift search`
(about 9 of its 10 s here), and converting the model for OpenVINO another 2-3 s at every
app start. So the model is converted once per machine: `convert` writes the OpenVINO model
(mean pooling and normalisation in the graph), the tokenizer and `meta.json` into
`<user cache>/papersift/openvino/<weights sha256>-ov<version>/`, and every later process
loads that folder with `openvino` and `tokenizers` alone (`CachedQueryEncoder`).

The folder is named by a sha256 of the model folder's files, so changed weights get a
new entry; that hash is remembered per (path, size, mtime) in `keys.json`, so a start
does not re-read 90 MB of weights. An entry is written to a temporary folder and renamed
into place (two processes converting at once both succeed; one entry stays). At load the
entry's files must match the sha256 sums in its `meta.json` (0.06 s for 90 MB, in the
background) and it must encode a probe sentence as it did at conversion (cosine 0.9999): a
damaged entry (a truncated or altered weights file, a bad `meta.json`) is removed and
converted again.

Models that are not a local folder (a hub name) or not of the convertible shape (mean
pooling) are encoded by `SentenceTransformerEncoder` on torch, one thread per query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.errors import ModelUnavailable, PapersiftError
from indexer.files import sha256_of

log = logging.getLogger(__name__)

FORMAT = 3  # 2: sha256 of each file; 3: and of meta.json itself
CACHE_ENV = "PAPERSIFT_CACHE"
PROBE = "How can a diffusion model be distilled into a single sampling step?"
PROBE_COSINE = 0.9999  # a loaded entry must encode the probe as it did when written
KEYS = "keys.json"


ENTRY_FILES = ("model.xml", "model.bin", "tokenizer.json")
_HEX64 = re.compile(r"[0-9a-f]{64}")
STALE = 24 * 3600  # a conversion folder untouched this long was left by a killed process


def _meta_digest(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_meta_file(folder: Path) -> dict:
    """meta.json, checked against its own sha256 (a readable but altered fingerprint or
    dim would otherwise be believed).

    Raises:
        OSError, ValueError: unreadable, another format, or altered.
    """
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise ValueError("meta.json does not match its own sha256")
    return meta


class NotCacheable(PapersiftError):
    """A model this cache does not take by design (a hub name, no OpenVINO): torch it is."""


class Unconvertible(NotCacheable):
    """A model this cache cannot take (another pooling, no fast tokenizer, OpenVINO
    disagreeing with torch): remembered beside its entry, so later starts go straight to
    torch instead of loading the model twice."""


class CacheEntryDamaged(PapersiftError):
    """A cache entry that cannot be loaded or does not encode as it did when written."""


def cache_root() -> Path:
    """Where converted models live: $PAPERSIFT_CACHE or the user cache folder."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser() / "openvino"
    import platformdirs

    return platformdirs.user_cache_path("papersift") / "openvino"


def _files(folder: Path) -> list[Path]:
    """The model's files: hidden ones and anything under a hidden folder (.git, .cache)
    left out, so a git checkout of a model keeps its key across `git fetch`."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def weights_key(folder: Path, root: Path | None = None) -> str:
    """sha256 of a model folder's files (names and contents), remembered per stat stamp."""
    root = root or cache_root()
    files = _files(folder)
    stamp = []
    for p in files:
        st = p.stat()
        stamp.append([str(p.relative_to(folder)), st.st_size, st.st_mtime_ns, st.st_ino])
    memo_path = root / KEYS
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    known = memo.get(str(folder))
    if (isinstance(known, dict) and known.get("stamp") == stamp
            and isinstance(known.get("key"), str) and _HEX64.fullmatch(known["key"])):
        return known["key"]  # only a sha256: the key names a folder in the cache
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(folder)).encode() + b"\0")
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    key = digest.hexdigest()
    memo[str(folder)] = {"stamp": stamp, "key": key}
    _write_json(root, memo_path, memo)
    return key


def _write_json(root: Path, path: Path, value) -> None:
    """Replace `path` atomically; a read-only or full cache only costs work next time."""
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".keys-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def entry_dir(key: str, root: Path | None = None) -> Path:
    import openvino

    version = openvino.__version__.split("-")[0]
    return (root or cache_root()) / f"{key[:32]}-ov{version}"


class CachedQueryEncoder:
    """Queries to unit vectors with a cached OpenVINO model on one thread; no torch.

    Raises:
        CacheEntryDamaged: the entry is incomplete, unreadable, or encodes the probe
            differently from when it was written.
    """

    def __init__(self, folder: Path) -> None:
        import openvino as ov
        from tokenizers import Tokenizer

        from indexer import openvino_backend

        self.folder = folder
        try:
            meta = _read_meta_file(folder)
            self.name = str(meta["name"])
            self.fingerprint = str(meta["fingerprint"])
            self.dim = int(meta["dim"])
            self.max_length = int(meta["max_length"])
            self._pad = (int(meta["pad_id"]), str(meta["pad_token"]))
            probe = np.asarray(meta["probe_vector"], dtype=np.float32)
            for name in ENTRY_FILES:  # a flipped byte in an unused row is caught here too
                if sha256_of(folder / name) != meta["sha256"][name]:
                    raise ValueError(f"{name} does not match its sha256 in meta.json")
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            model = ov.Core().read_model(str(folder / "model.xml"), str(folder / "model.bin"))
            self.compiled = openvino_backend.compile_for(model, latency=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
            # unreadable, malformed or altered files (OpenVINO raises RuntimeError for a
            # model it cannot read); a MemoryError or an interrupt is not damage
            raise CacheEntryDamaged(f"{folder}: {type(e).__name__}: {e}") from None
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        got = self.encode([PROBE])[0]
        if probe.shape != got.shape or float(got @ probe) < PROBE_COSINE:
            raise CacheEntryDamaged(f"{folder}: encodes the probe differently from when it was "
                                    "written")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([str(t) for t in texts])
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), width), self._pad[0], dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        with self._lock:
            result = self._request.infer({"input_ids": ids, "attention_mask": mask})
            out = np.array(result[self.compiled.output(0)], dtype=np.float32)
        return np.ascontiguousarray(out)


def convert(model: str | None, folder: Path, root: Path | None = None) -> Path:
    """Convert the model (torch needed, once per machine) into its cache entry; returns it.

    The entry is checked against torch before it is kept: the converted model must encode
    the probe and a few queries within cosine 0.9999 of sentence-transformers.
    """
    from indexer import openvino_backend
    from indexer.encoder import SentenceTransformerEncoder

    root = root or cache_root()
    key = weights_key(folder, root)
    final = entry_dir(key, root)
    source = SentenceTransformerEncoder(model, device="cpu", backend="torch", threads=1)
    st_model = source.model
    if not openvino_backend.convertible(st_model):
        raise Unconvertible(f"{source.name} is not a mean-pooling model OpenVINO can take")
    tokenizer = st_model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise Unconvertible(f"{source.name} has no fast tokenizer to save")
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        import openvino as ov

        ov.save_model(openvino_backend.convert(st_model), str(tmp / "model.xml"),
                      compress_to_fp16=False)
        backend.save(str(tmp / "tokenizer.json"))
        checks = [PROBE, "graph neural networks for molecules", "a" * 3000]
        expected = source.encode(checks)
        meta = {"format": FORMAT, "name": source.name, "fingerprint": source.fingerprint,
                "dim": source.dim, "max_length": int(st_model.max_seq_length),
                "pad_id": int(tokenizer.pad_token_id or 0),
                "pad_token": str(tokenizer.pad_token or "[PAD]"),
                "source": str(folder), "weights_sha256": key,
                "sha256": {name: sha256_of(tmp / name) for name in ENTRY_FILES},
                "probe_vector": [float(x) for x in expected[0]]}
        meta["meta_sha256"] = _meta_digest(meta)
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        got = CachedQueryEncoder(tmp).encode(checks)
        worst = float(np.min(np.sum(got * expected, axis=1)))
        if worst < PROBE_COSINE:
            raise Unconvertible(f"OpenVINO disagrees with torch on {source.name} "
                                 f"(cosine {worst:.5f})")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").exists():  # not another process's fresh entry
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _refused(entry: Path) -> Path:
    return entry.with_name(entry.name + ".unconvertible.json")


def _discard(folder: Path) -> None:
    """Move a damaged entry aside, then delete it (a reader holding it keeps its files)."""
    aside = folder.with_name(f".damaged-{folder.name}-{os.getpid()}")
    try:
        os.rename(folder, aside)
    except OSError:
        return
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            aside.unlink()


def _sweep(root: Path) -> None:
    """Remove what killed processes left: conversion folders untouched for `STALE`
    seconds and damaged entries moved aside."""
    try:
        found = list(root.iterdir())
    except OSError:
        return
    now = time.time()
    for path in found:
        try:
            stale = path.name.startswith(".damaged-") or (
                path.name.startswith((".tmp-", ".keys-")) and now - path.lstat().st_mtime > STALE)
        except OSError:
            continue
        if stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


def local_folder(model: str | None) -> Path | None:
    """The model's folder on disk (the packaged default or a --model folder), or None for
    a hub name."""
    from indexer.encoder import resolve_model

    _, load_from = resolve_model(model)
    path = Path(load_from)
    return path if path.is_dir() else None


def read_meta(entry: Path) -> dict | None:
    """An entry's name, fingerprint and dim, or None when it has no readable meta.json."""
    try:
        meta = _read_meta_file(entry)
        return {"name": str(meta["name"]), "fingerprint": str(meta["fingerprint"]),
                "dim": int(meta["dim"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _load(model: str | None, folder: Path, root: Path, entry: Path) -> CachedQueryEncoder:
    """The entry loaded, or (missing or damaged) converted again and loaded."""
    try:
        if entry.exists():
            try:
                return CachedQueryEncoder(entry)
            except CacheEntryDamaged as e:
                log.warning("rebuilding a damaged model cache entry (%s)", e)
                _discard(entry)
        log.info("converting %s for fast queries (once per machine) into %s",
                 model or "the model", entry)
        try:
            made = convert(model, folder, root)
        except Unconvertible as e:
            _write_json(root, _refused(entry), {"reason": str(e)})
            raise
        return CachedQueryEncoder(made)
    except PapersiftError:
        raise
    except Exception as e:  # noqa: BLE001 - a full disk, a conversion failure: torch serves
        raise PapersiftError(f"cannot cache {model or 'the model'} for OpenVINO: "
                             f"{type(e).__name__}: {e}") from None


class BackgroundEncoder:
    """A query encoder whose model loads in a thread while the index opens.

    Its name, fingerprint and dim (all the index's model check needs) come from the entry's
    meta.json at once; compiling the model (about 0.35 s) overlaps with opening the index,
    and the first `encode` waits for it. Should the entry turn out damaged, the thread
    converts it again (torch) or, failing that, falls back to sentence-transformers.
    """

    def __init__(self, model: str | None, meta: dict, load) -> None:
        self.name, self.fingerprint, self.dim = meta["name"], meta["fingerprint"], meta["dim"]
        self._model = model
        self._inner = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), daemon=True,
                                        name="papersift-query-model")
        self._thread.start()

    def _run(self, load) -> None:
        try:
            self._inner = load()
        except PapersiftError as e:
            log.warning("queries encoded with torch: %s", e)
            try:
                from indexer.encoder import SentenceTransformerEncoder

                self._inner = SentenceTransformerEncoder(self._model, threads=1)
            except BaseException as e2:  # noqa: BLE001 - reported at the first encode
                self._error = e2
        except BaseException as e:  # noqa: BLE001 - reported at the first encode
            self._error = e

    @property
    def loaded(self):
        """The encoder doing the work (waits for it)."""
        self._thread.join()
        if self._error is not None:
            raise PapersiftError(f"cannot load the query model: {self._error}")
        return self._inner

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.loaded.encode(texts)


def cached(model: str | None, root: Path | None = None, background: bool = False):
    """The model's cached query encoder, converting it first when there is no sound entry.

    `background`: when the entry's meta.json reads well, return at once a
    `BackgroundEncoder` that compiles the model in a thread.

    Raises:
        PapersiftError: the model cannot be taken this way (a hub name, another pooling,
            OpenVINO missing or disagreeing with torch).
    """
    from indexer import openvino_backend

    folder = local_folder(model)
    if folder is None:
        raise NotCacheable(f"{model} is not a model folder on this machine")
    if not openvino_backend.available():
        raise NotCacheable("OpenVINO is not installed")
    root = root or cache_root()
    try:
        entry = entry_dir(weights_key(folder, root), root)
    except OSError as e:
        raise PapersiftError(f"cannot read the model folder {folder}: {e}") from None
    try:
        refused = json.loads(_refused(entry).read_text(encoding="utf-8"))["reason"]
    except (OSError, ValueError, KeyError, TypeError):
        refused = None
    if refused:
        raise Unconvertible(str(refused))
    from indexer.encoder import resolve_model

    name = resolve_model(model)[0]  # as this model is named, whoever converted the files
    if background and (meta := read_meta(entry)) is not None:
        return BackgroundEncoder(model, {**meta, "name": name},
                                 lambda: _named(_load(model, folder, root, entry), name))
    return _named(_load(model, folder, root, entry), name)


def _named(encoder: CachedQueryEncoder, name: str) -> CachedQueryEncoder:
    encoder.name = name
    return encoder


def query_encoder(model: str | None = None):
    """The encoder for one query at a time: the cached OpenVINO model where the model
    allows (no torch; loading in the background while the index opens), else
    sentence-transformers on torch with one thread (bench/threads.py: one thread is
    faster whenever anything else uses a core)."""
    try:
        return cached(model, background=True)
    except NotCacheable as e:
        log.info("queries encoded with torch: %s", e)
    except ModelUnavailable:
        raise  # torch cannot load it either: one line, not two
    except PapersiftError as e:  # a cache that cannot be written, a conversion that failed
        log.warning("queries encoded with torch, about 8 s slower to start: %s", e)
    from indexer.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, threads=1)
