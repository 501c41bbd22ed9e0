"""`build --ray` / `update --ray` (indexer/cluster.py): blocks, checkpoints and plans
without Ray; the failures that must be one line; and, marked `cluster`, real builds on
the two-node loopback cluster of tests/ray_cluster.py: equal to a local build, a killed
actor retried, a killed driver resumed from its checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer import cluster, store, windows
from indexer.build import build_index, encode_papers
from indexer.errors import IndexCorrupt, PapersiftError
from indexer.records import Paper
from tests.conftest import BUNDLED
from tests.fakes import FakeEncoder
from tests.ray_cluster import free_port

ACTOR = "ray::MapWorker(MapBatches(EncodeActor))"


# ---------------------------------------------------------------- without Ray


def test_blocks_are_length_sorted_and_cover_every_text_once():
    texts = [f"text {'x' * (i * 7 % 50)} {i}" for i in range(23)]
    blocks = cluster.cut_blocks(texts, "fp", size=5)
    assert [len(b.rows) for b in blocks] == [5, 5, 5, 5, 3]
    rows = np.concatenate([b.rows for b in blocks])
    assert sorted(rows.tolist()) == list(range(23))
    lengths = [len(texts[i]) for i in rows]
    assert lengths == sorted(lengths, reverse=True)  # longest first, as encode_papers sorts
    assert [b.key for b in cluster.cut_blocks(texts, "fp", size=5)] == [b.key for b in blocks]


def test_block_keys_name_the_model_and_every_text():
    key = cluster.block_key
    assert key("fp", ["ab", "c"]) != key("fp", ["a", "bc"])  # texts are length-prefixed
    assert key("fp", ["a"]) != key("other model", ["a"])
    assert key("fp", ["a", "b"]) != key("fp", ["b", "a"])
    assert len(key("fp", ["\udcff"])) == 64  # a lone surrogate from a bad file still hashes


def test_checkpoints_round_trip_and_refuse_what_does_not_fit(tmp_path):
    saved = cluster.Checkpoints(tmp_path / ".ray-blocks")
    vectors = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert saved.get("k", 3, 4) is None and saved.count() == 0
    saved.put("k", vectors)
    assert np.array_equal(saved.get("k", 3, 4), vectors)
    assert saved.get("k", 2, 4) is None and saved.get("k", 3, 8) is None  # another block
    (saved.folder / "torn.npy").write_bytes(b"\x93NUMPY")  # cut short by a crash
    assert saved.get("torn", 3, 4) is None
    assert not list(saved.folder.glob(".*.tmp"))
    saved.clear()
    assert not saved.folder.exists()


def test_plan_one_actor_per_gpu_else_per_four_cpus():
    assert cluster.plan([{"CPU": 4}, {"CPU": 4}]) == cluster.Plan(2, 2, 4.0, 0.0)
    assert cluster.plan([{"CPU": 32}, {"CPU": 8}]).actors == 10
    assert cluster.plan([{"CPU": 2}]) == cluster.Plan(1, 1, 2.0, 0.0)  # a small node
    assert cluster.plan([{"CPU": 16, "GPU": 2}, {"CPU": 8}]) == cluster.Plan(2, 2, 1.0, 1.0)
    assert cluster.plan([{"CPU": 4}, {"CPU": 4}], actors=5).actors == 5
    assert cluster.plan([{"CPU": 8, "GPU": 4}]).info() == {"nodes": 1, "actors": 4, "gpus": 4}
    with pytest.raises(PapersiftError, match="no CPU or GPU"):
        cluster.plan([{"memory": 1}])


def test_a_ray_failure_is_its_innermost_papersift_message():
    try:
        try:
            raise PapersiftError("node n1: model m has weights a, the driver's have b")
        except PapersiftError as inner:
            raise RuntimeError("Traceback ...\n  File x\nRayTaskError: long") from inner
    except RuntimeError as outer:
        assert cluster._first_line(outer) == "node n1: model m has weights a, the driver's have b"
    assert cluster._first_line(RuntimeError("line 1\n\nthe last line\n")) == "the last line"


class ManyEncoder(FakeEncoder):
    """A fake offering `encode_many`, as RayEncoder does."""

    def encode_many(self, texts, on_progress=None):
        self.calls.append(("many", len(texts)))
        if on_progress:
            on_progress(len(texts), len(texts))
        return self.encode(list(texts))


def test_encode_papers_hands_an_encode_many_encoder_every_text_at_once():
    papers = [Paper(id=str(i), title=f"t{i}", abstract="word " * i) for i in range(1, 1300)]
    many, plain = ManyEncoder(), FakeEncoder()
    got = encode_papers(papers, many)
    assert many.calls[0] == ("many", 1299)
    assert np.allclose(got, encode_papers(papers, plain))
    assert plain.calls == [512, 512, 275]  # the local path as before


class WindowedMany(ManyEncoder):
    """A fake with a tokenizer (one token per word) and encode_many."""

    class Tokenizer:
        is_fast = False

        def __call__(self, texts, **options):
            return {"input_ids": [t.split() for t in texts]}

        def decode(self, ids):
            return " ".join(ids)

    tokenizer = Tokenizer()


def test_papers_and_windows_go_to_the_cluster_in_one_call():
    papers = [Paper(id=str(i), title="", abstract=" ".join(f"w{i}x{j}" for j in range(40 * i)))
              for i in range(1, 8)]
    enc = WindowedMany()
    whole, (vectors, owners) = windows.encode_with_papers(papers, enc, True)
    assert len(enc.calls) == 2 and enc.calls[0][0] == "many"  # encode_many, then its encode
    plain = WindowedMany()
    assert np.allclose(whole, encode_papers(papers, plain))
    want_vectors, want_owners = windows.encode(papers, plain)
    assert np.array_equal(owners, want_owners) and np.allclose(vectors, want_vectors)
    alone, none = windows.encode_with_papers(papers, WindowedMany(), False)
    assert none is None and np.allclose(alone, whole)


def test_a_hidden_checkpoint_folder_upsets_no_index_command(run, toy_index):
    blocks = store.blocks_dir(toy_index)
    blocks.mkdir()
    cluster.Checkpoints(blocks).put("k", np.zeros((2, 4), np.float32))
    assert store.remove_leftovers(toy_index) == []
    assert blocks.is_dir()
    for command in (["info", "--index", toy_index, "--verify"], ["repair", "--index", toy_index]):
        code, out, err = run(*command)
        assert code == 0, err
    assert store.generations(toy_index) and blocks.is_dir()


def test_the_manifest_records_the_cluster_and_checks_the_entry(tmp_path, toy_file, run):
    gen = build_index([toy_file], tmp_path / "i", FakeEncoder())
    manifest = json.loads((gen.generation / store.MANIFEST).read_text())
    assert "ray" not in manifest["build"]  # a local build's manifest is as before
    manifest["build"]["ray"] = {"nodes": 2, "actors": 3, "gpus": 0}
    store.check_manifest(Path("m"), manifest)
    from ui.facts import build_line

    assert "encoded on Ray (2 nodes, 3 actors)" in build_line(manifest)
    manifest["build"]["ray"] = "two nodes"
    with pytest.raises(IndexCorrupt, match="build.ray"):
        store.check_manifest(Path("m"), manifest)


def _served(root: Path) -> tuple[str, bytes]:
    gen, _ = store.read_manifest(root)
    return gen.name, (gen / store.MANIFEST).read_bytes()


def test_no_cluster_there_is_one_line_and_the_index_is_untouched(run, toy_index, toy_file):
    before = _served(toy_index)
    address = f"127.0.0.1:{free_port()}"  # nothing listens
    for command in ("build", "update"):
        code, out, err = run(command, toy_file, "--index", toy_index, "--ray", address)
        assert code == 1, (out, err)
        assert err.strip() == (f"papersift: error: no Ray cluster at {address} (Connection "
                               "refused): start one with `ray start --head` (README 'Running "
                               "on a cluster')")
    assert _served(toy_index) == before
    assert not store.blocks_dir(toy_index).exists()


def test_without_ray_installed_it_says_which_extra(run, toy_index, toy_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, out, err = run("build", toy_file, "--index", toy_index, "--ray", "auto")
    assert code == 1
    assert err.strip() == ("papersift: error: encoding on a Ray cluster needs Ray on this "
                           "machine: pip install 'papersift[cluster]'")
    code, out, err = run("build", toy_file, "--index", toy_index, "--ray", "auto",
                         "--vectors", "v.npy", "--model-name", "m")
    assert code == 2 and "leave out --ray" in err


# ---------------------------------------------------------------- on a real cluster


def _cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _ids(root: Path) -> list[str]:
    handle = store.open_index(root)
    try:
        return [p.id for p in handle.papers.all_papers()]
    finally:
        handle.close()


def _papersift(*args) -> list[str]:
    return [str(Path(sys.executable).with_name("papersift")), *map(str, args)]


def _wait_for(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = 600,
              poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the build ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


@pytest.mark.cluster
@pytest.mark.model
def test_a_ray_build_equals_a_local_build(ray_cluster, tmp_path, capsys, bundled_index,
                                          real_index):
    from ui.cli import main

    root = tmp_path / "ray-index"
    started = time.perf_counter()
    code = main(["build", str(BUNDLED), "--index", str(root), "--ray", ray_cluster,
                 "--ray-actors", "2"])
    out, err = capsys.readouterr()
    print(f"ray build of 2,000 papers with windows: {time.perf_counter() - started:.1f} s")
    assert code == 0, err
    assert "Encoded on Ray: 2 nodes, 2 actors; blocks of 256 texts: 32 encoded, 0 reused" in out
    assert not store.blocks_dir(root).exists()  # removed once the generation is served
    ray_h, local_h, windowed_h = (store.open_index(r, verify=True)
                                  for r in (root, bundled_index, real_index))
    try:
        assert [p.id for p in ray_h.papers.all_papers()] == _ids(bundled_index)
        assert _cosines(ray_h.vectors, local_h.vectors).min() >= 0.9999
        # windows: the first 300 papers' against the local 300-paper build's
        n = windowed_h.count
        assert [p.id for p in ray_h.papers.all_papers()][:n] == _ids(real_index)
        first = ray_h.window_ptr[n]
        owners = np.repeat(np.arange(ray_h.count), np.diff(ray_h.window_ptr))
        want = np.repeat(np.arange(n), np.diff(windowed_h.window_ptr))
        assert np.array_equal(owners[:first], want)
        assert _cosines(ray_h.windows[:first], windowed_h.windows).min() >= 0.9999
        a, b = dict(ray_h.manifest), dict(local_h.manifest)
        assert a["build"] == {**b["build"], "windows": True,
                              "ray": {"nodes": 2, "actors": 2, "gpus": 0}}
        assert a["windows"] == {**windowed_h.manifest["windows"], "count": len(owners)}
        for m in (a, b):
            for key in ("created", "build", "files", "windows"):
                m.pop(key)
        assert a == b
    finally:
        for h in (ray_h, local_h, windowed_h):
            h.close()


@pytest.mark.cluster
def test_a_killed_actor_is_retried_and_every_paper_is_encoded_once(
        ray_local_cluster, tmp_path, bundled_index):
    """kill -9 of an encoding actor's process (one of this test cluster's own processes,
    found by its title) while blocks are left: Ray restarts it, its block is retried."""
    root = tmp_path / "index"
    proc = subprocess.Popen(_papersift("build", BUNDLED, "--index", root, "--no-windows",
                                       "--ray", ray_local_cluster.address, "--ray-actors", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        blocks = cluster.Checkpoints(store.blocks_dir(root))
        _wait_for(lambda: blocks.count() >= 1, "the first block", proc)
        victims = ray_local_cluster.workers(ACTOR)
        assert len(victims) == 2
        victims[0].send_signal(signal.SIGKILL)
        done_at_kill = blocks.count()
        assert done_at_kill < 8  # 2,000 papers are 8 blocks: the kill was mid-build
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "blocks of 256 texts: 8 encoded, 0 reused" in out, out
    assert len(out.splitlines()) == 2, out  # Ray's notes on the retry go to stderr
    ids = _ids(root)
    assert len(ids) == 2000 == len(set(ids)) and ids == _ids(bundled_index)
    ray_h, local_h = store.open_index(root), store.open_index(bundled_index)
    try:
        assert _cosines(ray_h.vectors, local_h.vectors).min() >= 0.9999
    finally:
        ray_h.close()
        local_h.close()


@pytest.mark.cluster
def test_a_restarted_driver_reuses_finished_blocks(ray_cluster, tmp_path, bundled_index):
    """The driver killed (kill -9) after a block is checkpointed: the served generation is
    untouched, and the same command again encodes only the blocks that were left."""
    papers = tmp_path / "papers-600.jsonl"  # 3 blocks (256 + 256 + 88) on one actor, one at
    with BUNDLED.open(encoding="utf-8") as src:  # a time: the first is checkpointed while
        papers.write_text("".join(line for _, line in zip(range(600), src, strict=False)),
                          encoding="utf-8")  # 344 texts are left, many seconds of encoding
    root = tmp_path / "index"
    build_index([papers], root, FakeEncoder(dim=384), with_windows=False)  # served meanwhile
    before = _served(root)
    command = _papersift("build", papers, "--index", root, "--no-windows", "--ray",
                         ray_cluster, "--ray-actors", "1")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        blocks = cluster.Checkpoints(store.blocks_dir(root))
        _wait_for(lambda: blocks.count() >= 1, "the first block", proc, poll=0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = blocks.count()
    assert 1 <= kept < 3 and _served(root) == before
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"blocks of 256 texts: {3 - kept} encoded, {kept} reused" in done.stdout
    assert _ids(root) == _ids(bundled_index)[:600]
    ray_h, local_h = store.open_index(root), store.open_index(bundled_index)
    try:
        assert _cosines(ray_h.vectors, local_h.vectors[:600]).min() >= 0.9999
        assert ray_h.manifest["build"]["ray"] == {"nodes": 2, "actors": 1, "gpus": 0}
    finally:
        ray_h.close()
        local_h.close()
    assert not blocks.folder.exists()


@pytest.mark.cluster
@pytest.mark.model
def test_update_on_the_cluster_encodes_only_the_new_papers(ray_cluster, real_index_copy,
                                                           tmp_path, capsys, real_encoder):
    from ui.cli import main

    lines = BUNDLED.read_text(encoding="utf-8").splitlines()[300:320]
    new = tmp_path / "new.jsonl"
    new.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = store.open_index(real_index_copy)
    old_vectors, old_windows = np.array(before.vectors), np.array(before.windows)
    before.close()
    code = main(["update", str(new), "--index", str(real_index_copy), "--ray", ray_cluster])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "20 added" in out and "encoded 20 papers; 320 in the index" in out
    assert "blocks of 256 texts: 1 encoded, 0 reused" in out
    handle = store.open_index(real_index_copy, verify=True)
    try:
        papers = handle.papers.all_papers()
        assert len(papers) == 320
        assert np.array_equal(handle.vectors[:300], old_vectors)  # kept, not re-encoded
        local = encode_papers(papers[300:], real_encoder)
        assert _cosines(handle.vectors[300:], local).min() >= 0.9999
        first = handle.window_ptr[300]
        assert np.array_equal(handle.windows[:first], old_windows)
        want, owners = windows.encode(papers[300:], real_encoder)
        assert np.array_equal(np.repeat(np.arange(20), np.diff(handle.window_ptr[300:])), owners)
        assert _cosines(handle.windows[first:], want).min() >= 0.9999
        assert handle.manifest["build"]["ray"] == {"nodes": 2, "actors": 2, "gpus": 0}
    finally:
        handle.close()
    assert not store.blocks_dir(real_index_copy).exists()


@pytest.mark.cluster
def test_a_lost_node_is_survived(tmp_path, bundled_index):
    """A whole worker node killed mid-build (its raylet, workers and all: the session of
    its `ray start`) on a cluster of this test's own: the head's actor finishes the work."""
    from tests.ray_cluster import local_cluster

    root = tmp_path / "index"
    with local_cluster() as two:
        proc = subprocess.Popen(_papersift("build", BUNDLED, "--index", root, "--no-windows",
                                           "--ray", two.address, "--ray-actors", "2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            blocks = cluster.Checkpoints(store.blocks_dir(root))
            _wait_for(lambda: blocks.count() >= 1, "the first block", proc)
            os.killpg(two.procs[1].pid, signal.SIGKILL)  # the second node, nothing else
            assert blocks.count() < 8
            out, err = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1].endswith("blocks of 256 texts: 8 encoded, 0 reused from an "
                                         "earlier run") and len(out.splitlines()) == 2, out
    assert "papersift: ray: " in err  # the retries, noted on stderr
    ids = _ids(root)
    assert len(ids) == 2000 == len(set(ids)) and ids == _ids(bundled_index)
