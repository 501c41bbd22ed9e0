"""Incremental update: only new or changed papers are encoded; the old index serves meanwhile."""

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from indexer.build import build_index
from indexer.errors import IndexLocked, ModelMismatch
from indexer.store import open_index, read_manifest
from indexer.update import update_index
from search import Searcher
from tests.conftest import ROOT, TOY, another_writer, write_jsonl
from tests.fakes import FakeEncoder


def ids(root):
    return [p.id for p in open_index(root).papers.all_papers()]


def test_adds_new_papers_and_encodes_only_them(toy_index, tmp_path, fake_encoder):
    new = [{"id": "2402.00001", "title": "Sparse attention for long documents", "abstract": "x"},
           {"id": "2402.00002", "title": "Graph transformers", "abstract": "y"}]
    fake_encoder.calls.clear()
    report = update_index([write_jsonl(tmp_path / "new.jsonl", TOY + new)], toy_index, fake_encoder)
    assert (report.added, report.changed, report.unchanged, report.encoded) == (2, 0, 5, 2)
    assert sum(fake_encoder.calls) == 2
    assert ids(toy_index) == [r["id"] for r in TOY] + ["2402.00001", "2402.00002"]
    hit = Searcher(toy_index, fake_encoder).search("sparse attention long documents", k=1)[0]
    assert hit.id == "2402.00001"


def test_changed_text_is_re_embedded_and_upvotes_refresh_without_it(toy_index, tmp_path,
                                                                    fake_encoder):
    changed = dict(TOY[0], abstract="A completely new abstract about protein design.")
    upvoted = dict(TOY[1], upvotes=99)
    fake_encoder.calls.clear()
    report = update_index([write_jsonl(tmp_path / "u.jsonl", [changed, upvoted])], toy_index,
                          fake_encoder)
    assert (report.changed, report.refreshed, report.encoded) == (1, 1, 1)
    assert sum(fake_encoder.calls) == 1
    s = Searcher(toy_index, fake_encoder)
    assert s.paper(TOY[0]["id"]).abstract.startswith("A completely new")
    assert s.paper(TOY[1]["id"]).upvotes == 99
    assert s.paper(TOY[1]["id"]).categories == ("cs.CV", "cs.LG")
    assert s.search("completely new abstract protein design", k=1)[0].id == TOY[0]["id"]


def test_newer_version_replaces_and_older_is_ignored(tmp_path, fake_encoder):
    root = tmp_path / "ix"
    build_index([write_jsonl(tmp_path / "a.jsonl", [
        {"id": "2401.00001v2", "title": "Second version", "abstract": "v2"}])], root, fake_encoder)
    report = update_index([write_jsonl(tmp_path / "b.jsonl", [
        {"id": "arXiv:2401.00001v1", "title": "First version", "abstract": "v1"}])], root,
        fake_encoder)
    assert report.older_ignored == 1 and open_index(root).papers.all_papers()[0].title == "Second version"
    update_index([write_jsonl(tmp_path / "c.jsonl", [
        {"id": "2401.00001v3", "title": "Third version", "abstract": "v3"}])], root, fake_encoder)
    paper = open_index(root).papers.all_papers()[0]
    assert (paper.title, paper.version) == ("Third version", 3)


def test_nothing_new_keeps_the_generation(toy_index, toy_file, fake_encoder):
    before = read_manifest(toy_index)[0]
    report = update_index([toy_file], toy_index, fake_encoder)
    assert (report.unchanged, report.encoded) == (len(TOY), 0)
    assert read_manifest(toy_index)[0] == before


def test_missing_index_is_built(tmp_path, toy_file, fake_encoder):
    report = update_index([toy_file], tmp_path / "fresh", fake_encoder)
    assert report.added == report.total == len(TOY)


def test_readers_keep_the_old_generation_during_an_update(toy_index, tmp_path, fake_encoder):
    reader = Searcher(toy_index, fake_encoder)
    update_index([write_jsonl(tmp_path / "n.jsonl", [{"id": "2402.1", "title": "new"}])],
                 toy_index, fake_encoder)
    assert reader.count == len(TOY)
    assert len(reader.search("graph", k=100)) == len(TOY)
    assert Searcher(toy_index, fake_encoder).count == len(TOY) + 1


def test_second_updater_is_refused_and_other_models_too(toy_index, toy_file, fake_encoder):
    with (another_writer(toy_index),
          pytest.raises(IndexLocked, match="another papersift process")):
        update_index([toy_file], toy_index, fake_encoder)
    with pytest.raises(ModelMismatch):
        update_index([toy_file], toy_index, FakeEncoder(name="fake/other", seed="2"))


def test_sigkill_mid_update_then_rerun_loses_and_duplicates_nothing(toy_index, tmp_path):
    new = [{"id": f"2403.{i:05d}", "title": f"new paper {i}", "abstract": "fresh"} for i in range(7)]
    path = write_jsonl(tmp_path / "new.jsonl", new)
    before = read_manifest(toy_index)[0]
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from indexer import store
        from indexer.update import update_index
        from tests.fakes import FakeEncoder
        real = store._write_vectors
        def die(path, vectors):
            real(path, vectors)
            os.kill(os.getpid(), signal.SIGKILL)  # after one file of the new generation
        store._write_vectors = die
        update_index([{str(path)!r}], {str(toy_index)!r}, FakeEncoder())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert read_manifest(toy_index)[0] == before  # the old generation served throughout
    assert ids(toy_index) == [r["id"] for r in TOY]

    report = update_index([path], toy_index, FakeEncoder())
    assert report.added == 7
    after = ids(toy_index)
    assert len(after) == len(set(after)) == len(TOY) + 7
    open_index(toy_index, verify=True)
    gens = [p for p in toy_index.iterdir() if p.name.startswith("gen-")]
    assert gens == [read_manifest(toy_index)[0]]  # the half-written and the superseded one
    # are removed (nobody leases them)
    assert json.loads((read_manifest(toy_index)[0] / "manifest.json").read_text())["count"] == 12
