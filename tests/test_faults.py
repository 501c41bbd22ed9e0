"""Fault injection: kill -9 inside every writer, damaged files under every command, a full
disk. Whatever happens, the last good generation serves, `info --verify` passes on it, the
next run succeeds, and every command answers with one line instead of a traceback."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import textwrap

import pytest

from indexer import store
from indexer.store import open_index, read_manifest
from tests.conftest import ROOT, TOY, write_jsonl
from tests.fakes import FakeEncoder
from tests.test_cli_inputs import one_line

NEW = [{"id": f"2499.{i:05d}", "title": f"Fresh paper {i} on quasars",
        "abstract": "Quasar lensing in a wide survey."} for i in range(4)]


def gens(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


# ---------------------------------------------------------------- kill -9 inside writers

WRITERS = {
    "build": "from indexer.build import build_index\n"
             "build_index([NEW], ROOT, FakeEncoder())",
    "update": "from indexer.update import update_index\n"
              "update_index([NEW], ROOT, FakeEncoder())",
    "map": "from indexer.atlas import map_index\nmap_index(ROOT, k=2, method='pca')",
}
# each point is a function the writer calls; the process dies right after it returns
POINTS = ["_write_papers", "_write_faiss", "write_atlas", "_file_entries", "_write_atomic"]
SKIP = {("map", "_write_papers"), ("map", "_write_faiss"),  # a map links those files
        ("build", "write_atlas")}  # covered by update and map (a build here has no map)


@pytest.mark.parametrize(("writer", "point"), [(w, p) for w in sorted(WRITERS) for p in POINTS
                                                if (w, p) not in SKIP])
def test_kill_9_at_each_point_keeps_the_last_good_generation(toy_index, tmp_path, writer, point):
    new = write_jsonl(tmp_path / "new.jsonl", NEW)
    before = read_manifest(toy_index)[0]
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from indexer import store
        from tests.fakes import FakeEncoder
        NEW, ROOT = Path({str(new)!r}), Path({str(toy_index)!r})
        real = getattr(store, {point!r})
        def die(*args, **kwargs):
            result = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(store, {point!r}, die)
    """) + WRITERS[writer] + "\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    if proc.returncode == 0:  # only an update without a map never writes one
        assert (writer, point) == ("update", "write_atlas"), proc.stderr.decode()[-2000:]
        assert read_manifest(toy_index)[0] != before
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
        served = read_manifest(toy_index)[0]
        # killed before the switch: the old one serves; after it: the new one, complete
        assert served == before or (point == "_write_atomic" and (served / "manifest.json").exists())
    handle = open_index(toy_index, verify=True)
    assert handle.count >= len(TOY)
    handle.close()
    exec(WRITERS[writer], {"NEW": new, "ROOT": toy_index, "FakeEncoder": FakeEncoder})  # again
    final = open_index(toy_index, verify=True)
    assert final.count == (len(NEW) if writer == "build" else
                           len(TOY) + len(NEW) if writer == "update" else len(TOY))
    assert gens(toy_index) == [final.generation.name]  # crashed leftovers are gone
    assert not (toy_index / ".CURRENT.tmp").exists()


# ---------------------------------------------------------------- damaged files, every command

COMMANDS = [
    ("info",),
    ("info", "--verify"),
    ("search", "graph networks"),
    ("search", "graph networks", "--mode", "bm25"),
    ("similar", "2401.00001"),
    ("search", "graph", "--author", "Lovelace"),
]


def _files(root):
    gen, manifest = read_manifest(root)
    return gen, sorted(manifest["files"])


def _damaged(root, name, how):
    gen, manifest = read_manifest(root)
    path = gen / name
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # same size, flipped bytes across the file (headers and data)
        for at in range(0, len(data), max(1, len(data) // 64)):
            data[at] ^= 0xA5
    path.write_bytes(bytes(data))
    return manifest["files"][name]


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_every_command_on_every_damaged_file_is_one_line_or_a_sound_answer(
        run, tmp_path, toy_file, how):
    from indexer.build import build_index

    template = tmp_path / "template"
    build_index([toy_file], template, FakeEncoder(), with_map=True)
    _, names = _files(template)
    assert {"papers.sqlite", "vectors.npy", "faiss.index", "map/coords.npy"} <= set(names)
    import shutil

    for name in names:
        root = tmp_path / f"{how}-{name.replace('/', '_')}"
        shutil.copytree(template, root)
        _damaged(root, name, how)
        for command in COMMANDS:
            code, out, err = run(*command, "--index", root)
            context = f"{how} {name}: papersift {' '.join(command)}"
            if code == 0:  # the damage did not touch what this command reads
                assert "Traceback" not in err, context
                assert "--verify" not in command, context  # verify finds every damage
                for line in out.splitlines():  # no absurd scores
                    if line.startswith("{"):
                        assert abs(json.loads(line).get("score", 0)) <= 1.01, context
            else:
                assert code == 1, (context, err)
                one_line((code, out, err), 1)
                assert str(root) in err or name.split("/")[-1] in err or "gen-" in err, (context, err)
        # the writer refuses to copy it forward
        code, _, err = run("update", write_jsonl(tmp_path / "n.jsonl", NEW), "--index", root)
        assert code == 1 and "papersift: error:" in err, (how, name, err)
        assert len(gens(root)) == 1


# ---------------------------------------------------------------- disk full


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(toy_index, tmp_path):
    new = write_jsonl(tmp_path / "new.jsonl", NEW * 1)
    before = gens(toy_index)
    used = max(p.stat().st_size for p in read_manifest(toy_index)[0].rglob("*") if p.is_file())
    limit = used // 4  # the first big file of the new generation hits the limit

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests import fakes
        from ui import clikit
        clikit.make_encoder = lambda *a, **k: fakes.FakeEncoder()
        from ui.cli import main
        sys.exit(main(["update", {str(new)!r}, "--index", {str(toy_index)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, preexec_fn=limited)
    one_line((proc.returncode, proc.stdout, proc.stderr.strip()), 1,
             "could not write a new generation (", "the index is unchanged")
    assert gens(toy_index) == before
    assert open_index(toy_index, verify=True).count == len(TOY)


def test_store_keeps_no_pickle_anywhere(toy_index):
    """Every array of a generation loads with allow_pickle=False (nothing is unpickled)."""
    import numpy as np

    gen = read_manifest(toy_index)[0]
    for path in gen.rglob("*.npy"):
        np.load(path, allow_pickle=False)
    assert store.MANIFEST == "manifest.json"


def test_a_title_with_rich_markup_is_printed_as_text(run, tmp_path):
    from indexer.build import build_index

    path = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "2498.00001", "title": "[/x] Broken [bold]markup[/bold] title", "abstract": "graph"},
        {"id": "2498.00002", "title": "Graph networks", "abstract": "graph networks"}])
    build_index([path], tmp_path / "idx", FakeEncoder())
    code, out, err = run("similar", "2498.00001", "--index", tmp_path / "idx")
    assert code == 0, err
    assert "[/x] Broken [bold]markup[/bold] title" in out


# ---------------------------------------------------------------- hostile-review cases


def test_terminal_escapes_in_records_never_reach_the_terminal(run, tmp_path):
    from indexer.build import build_index

    path = write_jsonl(tmp_path / "e.jsonl", [
        {"id": "2497.00001", "title": "Evil \u001b[2J graph \u001b]0;pwned\u0007 title",
         "abstract": "graph \u009b31m networks", "authors": ["Eve \u001b[31mRed"]},
        {"id": "2497.00002", "title": "Graph networks", "abstract": "graph networks"}])
    build_index([path], tmp_path / "idx", FakeEncoder())
    code, out, err = run("search", "graph", "--no-floor", "--index", tmp_path / "idx")
    assert code == 0 and "Evil" in out
    assert not any(c in out for c in "\x1b\x07\x9b")
    code, out, _ = run("search", "graph", "--no-floor", "--json", "--index", tmp_path / "idx")
    assert "\\u001b" not in out and "\x1b" not in out


def test_bytes_that_are_not_utf8_in_arguments_are_one_line(run, toy_index):
    for args in (["similar", "\udcff"], ["recommend", "--like", "2401.00001", "--unlike", "\udcff"],
                 ["search", "gr\udcffaph"], ["list", "add", "L", "\udcff"]):
        one_line(run(*args, "--index", toy_index), 2, "is not valid UTF-8")


def test_huge_finite_imported_vectors_are_normalised_not_zeroed(tmp_path):
    import numpy as np

    from indexer.build import build_index

    papers = write_jsonl(tmp_path / "p.jsonl", [
        {"id": f"2496.0000{i}", "title": f"paper {i}", "abstract": "words"} for i in range(2)])
    np.save(tmp_path / "v.npy", np.array([[3e38] * 16, [-3e38] + [1.0] * 15], np.float32))
    build_index([papers], tmp_path / "idx", None, vectors_path=tmp_path / "v.npy",
                model_name="x/y")
    vectors = np.asarray(open_index(tmp_path / "idx", verify=True).vectors)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_manifest_fields_that_do_not_fit_the_files_are_one_line(run, toy_index):
    gen = read_manifest(toy_index)[0]
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["faiss"]["nprobe"] = 4  # on a flat index
    (gen / "manifest.json").write_text(json.dumps(manifest))
    for command in (["info"], ["search", "graph"], ["similar", "2401.00001"]):
        one_line(run(*command, "--index", toy_index), 1, "faiss fields do not fit")
    manifest["faiss"].pop("nprobe")
    manifest["map"] = {"seed": "x", "clusters": 3, "method": "pca"}
    (gen / "manifest.json").write_text(json.dumps(manifest))
    one_line(run("info", "--index", toy_index), 1, "field 'map'")


def test_a_file_where_the_map_folder_should_be_is_one_line(run, toy_index):
    gen = read_manifest(toy_index)[0]
    (gen / "map").write_text("not a folder")
    one_line(run("info", "--index", toy_index), 1, "unreadable map")


def test_writers_do_not_create_an_index_at_a_mistyped_path(run, tmp_path):
    for command in (["repair"], ["map"]):
        one_line(run(*command, "--index", tmp_path / "typo" / "idx"), 1, "no index at")
    assert not (tmp_path / "typo").exists()
    long = tmp_path / ("x" * 300)
    one_line(run("info", "--index", long), 1, "File name too long")


def test_a_rebuild_keeps_the_recorded_choices(run, tmp_path, toy_file):
    root = tmp_path / "idx"
    assert run("build", toy_file, "--index", root, "--index-type", "flat", "--float16")[0] == 0
    assert run("build", toy_file, "--index", root)[0] == 0
    build = read_manifest(root)[1]["build"]
    assert (build["index_type"], build["float16"]) == ("flat", True)
    assert run("build", toy_file, "--index", root, "--float32")[0] == 0
    assert read_manifest(root)[1]["build"]["float16"] is False
