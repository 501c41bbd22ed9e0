import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from indexer import store
from indexer.build import build_index
from indexer.errors import (
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    ModelMismatch,
    PapersiftError,
)
from indexer.store import ModelInfo, open_index, read_manifest
from tests.conftest import ROOT, TOY, another_writer
from tests.fakes import FakeEncoder


def test_manifest_describes_the_generation(toy_index, fake_encoder):
    gen, manifest = read_manifest(toy_index)
    assert (toy_index / "CURRENT").read_text().strip() == gen.name
    assert manifest["schema_version"] == store.SCHEMA_VERSION
    assert manifest["model"] == {"name": fake_encoder.name, "fingerprint": fake_encoder.fingerprint}
    assert (manifest["dim"], manifest["count"], manifest["metric"]) == (64, len(TOY), "inner_product")
    assert manifest["normalized"] is True
    assert manifest["faiss"]["type"] == "IndexFlatIP"
    for name in store.DATA_FILES:
        assert manifest["files"][name]["size"] == (gen / name).stat().st_size
        assert len(manifest["files"][name]["sha256"]) == 64
    open_index(toy_index, verify=True)


def test_vectors_are_plain_npy_without_pickle(toy_index):
    gen, _ = read_manifest(toy_index)
    vectors = np.load(gen / store.VECTORS, allow_pickle=False)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound, match="no index at"):
        open_index(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFound, match="no CURRENT file"):
        open_index(tmp_path / "empty")


@pytest.mark.parametrize("name", store.DATA_FILES)
def test_truncated_file_is_refused_with_both_sizes(toy_index, name):
    gen, manifest = read_manifest(toy_index)
    size = manifest["files"][name]["size"]
    with open(gen / name, "r+b") as f:
        f.truncate(size - 10)
    with pytest.raises(IndexCorrupt, match=rf"{name}: {size - 10} bytes but manifest.json says {size}"):
        open_index(toy_index)


@pytest.mark.parametrize("name", store.DATA_FILES)
def test_missing_file_is_refused(toy_index, name):
    gen, _ = read_manifest(toy_index)
    (gen / name).unlink()
    with pytest.raises(IndexCorrupt, match=rf"{name}: missing"):
        open_index(toy_index)


def test_changed_bytes_caught_by_verify(toy_index):
    gen, _ = read_manifest(toy_index)
    data = bytearray((gen / store.VECTORS).read_bytes())
    data[-1] ^= 0xFF
    (gen / store.VECTORS).write_bytes(bytes(data))
    open_index(toy_index)  # same size: only --verify reads every byte
    with pytest.raises(IndexCorrupt, match="vectors.npy: sha256"):
        open_index(toy_index, verify=True)


def test_count_disagreeing_with_metadata(toy_index):
    gen, manifest = read_manifest(toy_index)
    manifest["count"] = 99
    (gen / store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match=r"papers.sqlite: 5 papers but manifest.json says 99"):
        open_index(toy_index)


def test_other_model_same_dimension_is_refused(toy_index, fake_encoder):
    other = FakeEncoder(dim=64, name="fake/other", seed="v2")
    with pytest.raises(ModelMismatch) as e:
        open_index(toy_index, ModelInfo.of(other))
    message = str(e.value)
    assert "fake/bag-of-words" in message and "fake/other" in message
    assert fake_encoder.fingerprint[:12] in message and other.fingerprint[:12] in message
    open_index(toy_index, ModelInfo.of(fake_encoder))


def test_bad_manifest_and_pointer(toy_index):
    gen, _ = read_manifest(toy_index)
    (gen / store.MANIFEST).write_text("{")
    with pytest.raises(IndexCorrupt, match="manifest.json: not valid JSON"):
        open_index(toy_index)
    (toy_index / "CURRENT").write_text("../../etc")
    with pytest.raises(IndexCorrupt, match="which is not a generation"):
        open_index(toy_index)


def test_build_failing_between_files_keeps_previous_generation(
    toy_index, toy_file, fake_encoder, monkeypatch
):
    before, _ = read_manifest(toy_index)

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_faiss", boom)
    with pytest.raises(PapersiftError, match=r"could not write a new generation \(disk full\); "
                                             "the index is unchanged"):
        build_index([toy_file], toy_index, fake_encoder)
    gens = [p for p in toy_index.iterdir() if p.name.startswith("gen-")]
    assert gens == [before]  # the half-written generation is removed at once
    assert read_manifest(toy_index)[0] == before
    open_index(toy_index, verify=True).close()
    monkeypatch.undo()

    build_index([toy_file], toy_index, fake_encoder)
    gens = [p for p in toy_index.iterdir() if p.name.startswith("gen-")]
    assert gens == [read_manifest(toy_index)[0]] != [before]  # nobody leased the old one


def test_build_killed_between_two_files_keeps_previous_generation(toy_index, toy_file):
    before, _ = read_manifest(toy_index)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from indexer import store
        from indexer.build import build_index
        from tests.fakes import FakeEncoder
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        store._write_faiss = die
        build_index([{str(toy_file)!r}], {str(toy_index)!r}, FakeEncoder())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert read_manifest(toy_index)[0] == before
    assert open_index(toy_index, verify=True).count == len(TOY)
    assert not (toy_index / ".CURRENT.tmp").exists()
    half = [p for p in toy_index.iterdir() if p.name.startswith("gen-") and p != before]
    assert len(half) == 1 and not (half[0] / store.MANIFEST).exists()


def test_second_writer_is_refused(toy_index, toy_file, fake_encoder):
    with (another_writer(toy_index),
          pytest.raises(IndexLocked, match="another papersift process is writing")):
        build_index([toy_file], toy_index, fake_encoder)
    with store.writer_lock(toy_index), store.writer_lock(toy_index):  # re-entrant in a thread
        build_index([toy_file], toy_index, fake_encoder)


def test_open_generation_is_leased_across_rebuilds_and_freed_when_let_go(
        toy_index, toy_file, fake_encoder):
    handle = open_index(toy_index)
    build_index([toy_file], toy_index, fake_encoder)
    build_index([toy_file], toy_index, fake_encoder)
    assert handle.generation.is_dir()  # leased: no writer removes it
    assert handle.papers.count() == len(TOY)
    assert float(np.asarray(handle.vectors[0]) @ np.asarray(handle.vectors[0])) == pytest.approx(1.0)
    current = read_manifest(toy_index)[0]
    assert current.name != handle.generation.name
    gens = {p.name for p in toy_index.iterdir() if p.name.startswith("gen-")}
    assert gens == {current.name, handle.generation.name}  # the unleased middle one is gone
    handle.close()  # the last reader of a superseded generation removes it
    assert not handle.generation.exists()
    assert {p.name for p in toy_index.iterdir() if p.name.startswith("gen-")} == {current.name}
    reader = open_index(toy_index)
    del reader  # garbage collection releases the lease too; the current one stays
    assert current.is_dir()
