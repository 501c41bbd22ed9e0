"""The search path's query encoder: the converted model cached on disk, no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indexer import query_encoder as qe
from indexer.errors import PapersiftError

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["how do I distil a diffusion model into one step?", "gausian spaltting",
         "Über die Quantenmechanik 量子 ✓", "x", "attention " * 400]

pytestmark = pytest.mark.model  # most tests here load the packaged model


@pytest.fixture(scope="module")
def entry(real_encoder):
    """The packaged model's entry in the session's cache (converted at most once)."""
    encoder = qe.cached(None)
    return encoder.folder


def copy_cache(entry: Path, tmp_path: Path) -> Path:
    """A private cache holding a copy of the entry (and the hash memo), to damage."""
    root = tmp_path / "cache" / "openvino"
    shutil.copytree(entry.parent, root, ignore=shutil.ignore_patterns(".*"))
    return root


def test_cached_encoder_agrees_with_sentence_transformers(entry, real_encoder):
    fast = qe.CachedQueryEncoder(entry)
    got, want = fast.encode(TEXTS), real_encoder.encode(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.min(np.sum(got * want, axis=1)) > 0.9999
    assert (fast.fingerprint, fast.dim) == (real_encoder.fingerprint, real_encoder.dim)
    # named as the model is asked for, whoever converted the same files first
    assert qe.cached(None).name == real_encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert qe.cached(None, background=True).name == real_encoder.name
    assert fast.encode([]).shape == (0, 384)


def test_second_start_reuses_the_entry(entry, monkeypatch):
    def no_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(qe, "convert", no_conversion)
    again = qe.cached(None)
    assert again.folder == entry
    background = qe.cached(None, background=True)
    assert isinstance(background, qe.BackgroundEncoder)
    assert background.fingerprint == again.fingerprint  # from meta.json, before loading
    assert np.allclose(background.encode(TEXTS[:1]), again.encode(TEXTS[:1]), atol=1e-6)


def damage(copy: Path, kind: str) -> None:
    if kind == "weights":  # same size, numbers altered in rows the probe never uses
        blob = bytearray((copy / "model.bin").read_bytes())
        blob[len(blob) // 2: len(blob) // 2 + 4096] = bytes(4096)
        (copy / "model.bin").write_bytes(bytes(blob))
    elif kind == "truncated":
        with (copy / "model.bin").open("r+b") as f:
            f.truncate(1000)
    elif kind == "tokenizer":
        (copy / "tokenizer.json").write_text("{}")
    elif kind == "fingerprint":  # readable, well-formed, and wrong
        meta = json.loads((copy / "meta.json").read_text())
        (copy / "meta.json").write_text(json.dumps({**meta, "fingerprint": "bogus"}))
    else:
        (copy / "meta.json").write_text("{not json")


@pytest.mark.parametrize("kind", ["weights", "truncated", "tokenizer", "meta", "fingerprint"])
def test_a_damaged_entry_is_refused(entry, tmp_path, kind):
    root = copy_cache(entry, tmp_path)
    damage(root / entry.name, kind)
    with pytest.raises(qe.CacheEntryDamaged):
        qe.CachedQueryEncoder(root / entry.name)
    if kind in ("meta", "fingerprint"):  # never believed, not even for the model check
        assert qe.read_meta(root / entry.name) is None


def tiny_model(tmp_path: Path) -> Path:
    """A model folder of one small file (enough to be hashed into a key)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"one")
    return folder


def test_a_key_that_is_not_a_sha256_is_not_a_path(tmp_path):
    folder, root = tiny_model(tmp_path), tmp_path / "cache"
    key = qe.weights_key(folder, root)
    memo = json.loads((root / qe.KEYS).read_text())
    memo[str(folder)]["key"] = "../../../escaped"
    (root / qe.KEYS).write_text(json.dumps(memo))
    assert qe.weights_key(folder, root) == key


def test_a_damaged_entry_is_converted_again(entry, tmp_path, monkeypatch):
    root = copy_cache(entry, tmp_path)
    damage(root / entry.name, "weights")
    converted = []
    real_convert = qe.convert
    monkeypatch.setattr(qe, "convert", lambda *a: converted.append(a) or real_convert(*a))
    fixed = qe.cached(None, root=root, background=True)  # meta.json reads well: a thread
    vectors = fixed.encode(TEXTS[:2])
    assert converted, "the damaged entry was used as it was"
    assert np.min(np.sum(vectors * qe.CachedQueryEncoder(entry).encode(TEXTS[:2]), axis=1)) > 0.9999
    assert not any(p.name.startswith((".damaged", ".tmp")) for p in root.iterdir())
    qe.CachedQueryEncoder(root / entry.name)  # sound again, in place


def test_weights_key_follows_the_files(tmp_path):
    folder, root = tiny_model(tmp_path), tmp_path / "cache"
    first = qe.weights_key(folder, root)
    assert json.loads((root / qe.KEYS).read_text())[str(folder)]["key"] == first
    assert qe.weights_key(folder, root) == first
    (folder / "weights.bin").write_bytes(b"two!")
    assert qe.weights_key(folder, root) != first
    (root / qe.KEYS).write_text("[garbage")  # an unreadable memo is only a slower start
    assert qe.weights_key(folder, root) != first
    again = qe.weights_key(folder, root)
    (folder / ".git").mkdir()  # a git checkout of a model: its own files do not count
    (folder / ".git" / "FETCH_HEAD").write_text("abc")
    (folder / ".hidden").write_text("x")
    assert qe.weights_key(folder, root) == again
    assert not [p for p in root.iterdir() if p.name.startswith(".keys-")]


def test_a_model_that_cannot_be_converted_is_remembered(tmp_path, monkeypatch):
    """Another pooling: refused once with the reason, then straight to torch next time."""
    folder = tmp_path / "cls-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    root = tmp_path / "cache"
    tries = []

    def refuse(model, folder, root):
        tries.append(model)
        raise qe.Unconvertible("cls-model is not a mean-pooling model OpenVINO can take")

    monkeypatch.setattr(qe, "convert", refuse)
    for _ in range(2):
        with pytest.raises(qe.Unconvertible, match="not a mean-pooling model"):
            qe.cached(str(folder), root=root)
    assert len(tries) == 1


def test_a_failed_background_load_falls_back_or_says_so(monkeypatch):
    meta = {"name": "m", "fingerprint": "f", "dim": 3}

    def fails():
        raise PapersiftError("no OpenVINO today")

    from indexer import encoder as encoder_module

    class Torch:
        def __init__(self, model, threads):
            self.threads = threads

        def encode(self, texts):
            return np.ones((len(texts), 3), dtype=np.float32)

    monkeypatch.setattr(encoder_module, "SentenceTransformerEncoder", Torch)
    fallback = qe.BackgroundEncoder(None, meta, fails)
    assert fallback.encode(["q"]).shape == (1, 3) and fallback.loaded.threads == 1

    def crashes():
        raise RuntimeError("boom")

    broken = qe.BackgroundEncoder(None, meta, crashes)
    with pytest.raises(PapersiftError, match="cannot load the query model: boom"):
        broken.encode(["q"])


def test_a_hub_name_is_encoded_with_torch(monkeypatch):
    with pytest.raises(PapersiftError, match="not a model folder"):
        qe.cached("someone/some-hub-model")


def test_one_shot_search_does_not_import_torch(entry, real_index):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from ui.cli import main
        code = main(["search", "generative retrieval with a lexical index", "--json", "--index",
                     {str(real_index)!r}])
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "numba",
                                   "scipy.sparse") if m in sys.modules)
        print("HEAVY", heavy, file=sys.stderr)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert hits[0]["title"] == "GLEN: Generative Retrieval via Lexical Index Learning"


def test_bm25s_is_imported_without_numba_and_keeps_numpy_backends():
    """indexer.lexical.import_bm25s hides numba and scipy.sparse only while bm25s imports:
    scoring stays on bm25s's numpy backends, and both import normally afterwards (umap for
    `papersift map`)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from indexer import lexical
        bm25s = lexical.import_bm25s()
        loaded = [m for m in ("numba", "scipy.sparse") if sys.modules.get(m) is not None]
        retriever = bm25s.BM25()
        import numba, scipy.sparse  # noqa: F401,E401
        print(loaded, retriever.backend, retriever.csc_backend)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "numpy", "numpy"]
