"""A long-running reader across updates, and writers that refuse to guess (issue: always on)."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time

import numpy as np
import pytest

from indexer import store
from indexer.atlas import map_index
from indexer.build import build_index
from indexer.errors import IndexCorrupt, IndexNotFound, PapersiftError
from indexer.store import open_index, read_manifest
from indexer.update import update_index
from search.engine import Engine
from tests.conftest import TOY, new_papers, write_jsonl
from tests.fakes import FakeEncoder


def gens(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


def test_engine_follows_three_updates_while_a_reader_queries(toy_index, tmp_path, fake_encoder):
    engine = Engine(toy_index, fake_encoder)
    failures, answered, stop = [], [0], threading.Event()
    leased_while_held = []

    def reader():
        while not stop.is_set():
            try:
                searcher = engine.searcher()  # one generation for the whole request
                hits = searcher.search("quasar lensing survey", k=50)
                assert len(hits) >= min(5, searcher.count)
                assert searcher.index.generation.is_dir()  # never deleted under a reader
                leased_while_held.append(searcher.index.generation.is_dir())
                answered[0] += 1
            except Exception as e:  # noqa: BLE001 (the test counts every failure)
                failures.append(repr(e))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for batch in range(3):
            time.sleep(0.05)
            update_index([new_papers(tmp_path, batch)], toy_index, fake_encoder)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert answered[0] > 10
    searcher = engine.searcher()
    assert searcher.count == len(TOY) + 9
    assert engine.switches >= 1 and engine.problem is None
    top = searcher.search("quasar lensing survey", k=9)
    assert {h.id for h in top} == {f"2450.{b:02d}{i:03d}" for b in range(3) for i in range(3)}
    del searcher, top
    gc.collect()
    assert gens(toy_index) == [engine.generation.name]  # superseded generations freed


def test_a_reader_never_removes_a_generation_when_current_is_not_sound(toy_index):
    for damage in ("missing", "names-nothing", "garbage"):
        handle = open_index(toy_index)
        if damage == "missing":
            (toy_index / "CURRENT").unlink()
        else:
            (toy_index / "CURRENT").write_text("gen-20991231T000000Z-abcdef\n"
                                               if damage == "names-nothing" else "\x00")
        handle.close()
        assert gens(toy_index) == [handle.generation.name], damage  # repair needs it
        store.repair(toy_index)


def test_map_hard_links_the_served_files(toy_index):
    before = read_manifest(toy_index)[0]
    keep = open_index(toy_index)  # holds the old generation while the map is made
    gen, _ = map_index(toy_index, k=2, method="pca")
    assert (before / "faiss.index").samefile(gen / "faiss.index")
    assert (gen / "papers.sqlite").stat().st_nlink == 2
    keep.close()  # the last reader lets go: the old folder leaves at once, its files soon
    assert not before.exists()
    deadline = time.monotonic() + 10
    while (gen / "papers.sqlite").stat().st_nlink != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (gen / "papers.sqlite").stat().st_nlink == 1
    assert not [p for p in toy_index.iterdir() if p.name.startswith(".gen-")]


def test_a_leased_generation_outlives_updates_and_is_freed_by_its_last_reader(
        toy_index, tmp_path, fake_encoder):
    first = open_index(toy_index)
    update_index([new_papers(tmp_path, 1)], toy_index, fake_encoder)
    update_index([new_papers(tmp_path, 2)], toy_index, fake_encoder)
    current = read_manifest(toy_index)[0]
    assert gens(toy_index) == sorted([first.generation.name, current.name])
    assert first.papers.count() == len(TOY)
    first.close()
    assert gens(toy_index) == [current.name]


def test_engine_keeps_serving_when_the_new_generation_cannot_be_opened(toy_index, tmp_path,
                                                                       fake_encoder):
    engine = Engine(toy_index, fake_encoder)
    served = engine.generation
    build_index([new_papers(tmp_path, 1)], toy_index, FakeEncoder(name="fake/other", seed="2"))
    searcher = engine.searcher()
    assert searcher.index.generation == served
    assert "model" in (engine.problem or "")
    assert searcher.search("graph", k=3)
    build_index([new_papers(tmp_path, 2)], toy_index, fake_encoder)
    assert engine.searcher().index.generation != served and engine.problem is None


def test_map_is_a_new_generation_covered_by_the_manifest(toy_index, fake_encoder):
    engine = Engine(toy_index, fake_encoder)
    before = engine.generation
    assert engine.searcher().atlas() is None
    gen, _ = map_index(toy_index, k=2)
    assert gen != before and not (before / "map").exists()  # the served one never changes
    searcher = engine.searcher()
    assert searcher.index.generation == gen and searcher.atlas() is not None
    manifest = json.loads((gen / "manifest.json").read_text())
    assert {"map/coords.npy", "map/clusters.npy", "map/atlas.json"} <= set(manifest["files"])
    assert manifest["map"]["clusters"] == 2
    data = bytearray((gen / "map" / "coords.npy").read_bytes())
    data[-1] ^= 0xFF
    (gen / "map" / "coords.npy").write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="coords.npy: sha256"):
        open_index(toy_index, verify=True)


# ---------------------------------------------------------------- writers refuse to guess


def test_update_with_current_missing_is_refused_and_nothing_is_deleted(toy_index, tmp_path,
                                                                      fake_encoder):
    before = gens(toy_index)
    (toy_index / "CURRENT").unlink()
    with pytest.raises(IndexNotFound, match=r"generation folders found: gen-.*papersift repair"):
        update_index([new_papers(tmp_path, 1)], toy_index, fake_encoder)
    assert gens(toy_index) == before
    assert store.repair(toy_index)[0].name == before[-1]
    assert open_index(toy_index).count == len(TOY)


@pytest.mark.parametrize("content", [b"", b"\n", b"\xff\xfe\x00", b"../../etc",
                                     b"gen-20991231T000000Z-abcdef\n"])
def test_damaged_current_blocks_update_but_not_a_fresh_build(toy_index, tmp_path, fake_encoder,
                                                             content):
    before = gens(toy_index)
    (toy_index / "CURRENT").write_bytes(content)
    with pytest.raises(IndexCorrupt, match=r"CURRENT: .*(papersift repair|build the index)"):
        update_index([new_papers(tmp_path, 1)], toy_index, fake_encoder)
    assert gens(toy_index) == before
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        open_index(toy_index)
    with pytest.raises(PapersiftError, match="no valid papers"):  # a failed build deletes nothing
        build_index([write_jsonl(tmp_path / "bad.jsonl", ["{oops"])], toy_index, fake_encoder)
    assert gens(toy_index) == before
    report = build_index([new_papers(tmp_path, 2)], toy_index, fake_encoder)
    assert open_index(toy_index).count == 3
    assert gens(toy_index) == [report.generation.name]  # old folders kept until it served


def test_repair_points_at_the_newest_sound_generation(toy_index, tmp_path, fake_encoder):
    old = read_manifest(toy_index)[0]
    keep = tmp_path / "keep"
    shutil.copytree(old, keep)
    update_index([new_papers(tmp_path, 1)], toy_index, fake_encoder)
    newest = read_manifest(toy_index)[0]
    shutil.copytree(keep, old)  # an older generation still on disk
    data = bytearray((newest / "vectors.npy").read_bytes())
    data[-5] ^= 0x40
    (newest / "vectors.npy").write_bytes(bytes(data))
    (toy_index / "CURRENT").unlink()
    gen, skipped = store.repair(toy_index)
    assert gen == old and [g for g, _ in skipped] == [newest]
    assert "sha256" in skipped[0][1]
    assert open_index(toy_index, verify=True).count == len(TOY)


def test_update_refuses_to_copy_a_damaged_generation_forward(toy_index, tmp_path, fake_encoder):
    gen, _ = read_manifest(toy_index)
    data = bytearray((gen / "vectors.npy").read_bytes())
    data[-3] = 0x7F  # a same-size flip: a huge float the cheap checks do not see
    (gen / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="vectors.npy: sha256"):
        update_index([new_papers(tmp_path, 1)], toy_index, fake_encoder)
    assert gens(toy_index) == [gen.name]


def test_flipped_vectors_give_an_error_not_absurd_scores(toy_index, fake_encoder):
    from search import Searcher

    gen, _ = read_manifest(toy_index)
    vectors = np.load(gen / "vectors.npy")
    vectors[:, :] = 1e30
    with (gen / "vectors.npy").open("r+b") as f:  # same size, new bytes
        np.save(f, vectors, allow_pickle=False)
    with pytest.raises(IndexCorrupt, match="cosine scores outside"):
        Searcher(toy_index, fake_encoder).search("graph networks")


def test_update_keeps_every_build_choice(tmp_path, fake_encoder):
    papers = [{"id": f"2460.{i:05d}", "title": f"paper {i} about topic {i % 4}",
               "abstract": f"words {i} topic {i % 4} " * 5} for i in range(40)]
    root = tmp_path / "idx"
    build_index([write_jsonl(tmp_path / "a.jsonl", papers)], root, fake_encoder,
                index_type="flat", float16=True)
    map_index(root, k=3, method="pca")
    update_index([new_papers(tmp_path, 1)], root, fake_encoder)
    gen, manifest = read_manifest(root)
    assert manifest["build"]["index_type"] == "flat" and manifest["build"]["float16"] is True
    assert manifest["vector_dtype"] == "float16"
    assert manifest["map"]["clusters"] == 3 and manifest["map"]["method"] == "pca"
    assert manifest["map"]["computed_clusters"] == 3
    assert len(json.loads((gen / "map" / "atlas.json").read_text())["labels"]) == 3


def test_imported_vectors_index_needs_vectors_to_grow(tmp_path):
    papers = [{"id": f"2470.{i:05d}", "title": f"imported {i}", "abstract": "x"} for i in range(6)]
    vectors = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    root = tmp_path / "idx"
    build_index([write_jsonl(tmp_path / "a.jsonl", papers)], root, None,
                vectors_path=tmp_path / "v.npy", model_name="someone/else")
    more = write_jsonl(tmp_path / "b.jsonl", [{"id": "2470.99999", "title": "new", "abstract": "y"}])
    with pytest.raises(PapersiftError, match="imported .*pass --vectors"):
        update_index([more], root, FakeEncoder(dim=8))
    np.save(tmp_path / "w.npy", np.ones((1, 8), np.float32))
    report = update_index([more], root, None, vectors_path=tmp_path / "w.npy")
    assert (report.added, report.total) == (1, 7)
    handle = open_index(root, verify=True)
    assert handle.manifest["build"]["vectors"] == "w.npy"
    assert np.allclose(handle.vectors[6], np.ones(8) / np.sqrt(8), atol=1e-6)


def test_index_naming_a_file_is_one_line(tmp_path, toy_file, fake_encoder):
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(IndexNotFound, match="is a file, not an index folder"):
        build_index([toy_file], path, fake_encoder)
    with pytest.raises(IndexNotFound, match="is a file, not an index folder"):
        open_index(path)


def test_a_corpus_of_stopwords_is_refused_before_encoding(tmp_path):
    class Counting(FakeEncoder):
        calls = 0

        def encode(self, texts):
            Counting.calls += 1
            return super().encode(texts)

    path = write_jsonl(tmp_path / "s.jsonl", [
        {"id": "2480.00001", "title": "The of and", "abstract": "it is as it is"},
        {"id": "2480.00002", "title": "A an", "abstract": "... !!!"}])
    with pytest.raises(PapersiftError, match=r"no indexable words in .*s.jsonl: the 2 papers"):
        build_index([path], tmp_path / "idx", Counting())
    assert Counting.calls == 0 and not (tmp_path / "idx" / "CURRENT").exists()
