"""Shared fixtures: tiny corpora, a fake encoder, and one real-model index per session."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fakes import FakeEncoder

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "demo-arxiv-2k.jsonl"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOY = [
    {"id": "2401.00001", "title": "Graph neural networks for molecules",
     "abstract": "We predict molecular properties with message passing graph networks.",
     "authors": ["Ada Lovelace", "Alan Turing"], "categories": ["cs.LG", "q-bio.BM"],
     "published": "2024-01-02"},
    {"id": "2401.00002", "title": "Diffusion models distilled into one step",
     "abstract": "We distil a diffusion model into a one step image generator.",
     "authors": "Grace Hopper and Edsger Dijkstra", "categories": "cs.CV cs.LG",
     "published": "2024-02-10"},
    {"id": "2401.00003", "title": "Retrieval augmented generation for questions",
     "abstract": "Dense retrieval of passages helps language models answer questions.",
     "authors": ["Barbara Liskov"], "categories": ["cs.CL"], "published": "2024-03-15",
     "upvotes": 12},
    {"id": "2401.00004", "title": "Protein folding with attention",
     "abstract": "Attention networks predict protein structure from sequence.",
     "authors": ["Claude Shannon"], "categories": ["q-bio.BM"], "published": "2024-04-20"},
    {"id": "2401.00005", "title": "Faster diffusion sampling",
     "abstract": "Fewer sampling steps for diffusion image generation with distillation.",
     "authors": ["John von Neumann"], "categories": ["cs.CV"], "published": "2024-05-05"},
]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(
        (r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records
    ), encoding="utf-8")
    return path


def new_papers(folder: Path, batch: int, n: int = 3) -> Path:
    """A file of `n` new papers (ids 2450.BBIII) about quasar lensing, which no toy paper
    is about: what an update during continuous searches adds."""
    return write_jsonl(folder / f"batch{batch}.jsonl", [
        {"id": f"2450.{batch:02d}{i:03d}", "title": f"Quasar lensing survey number {batch} {i}",
         "abstract": "Gravitational lensing of distant quasars measured in a sky survey.",
         "published": "2025-01-01"} for i in range(n)])


@pytest.fixture
def toy_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", TOY)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def toy_index(tmp_path, toy_file, fake_encoder) -> Path:
    from indexer.build import build_index

    root = tmp_path / "index"
    build_index([toy_file], root, fake_encoder)
    return root


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """Converted query models go to one folder per test session, never the user's cache
    (tests that need an empty cache set PAPERSIFT_CACHE themselves)."""
    os.environ["PAPERSIFT_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real per-user index from a test."""
    monkeypatch.setenv("PAPERSIFT_INDEX", str(tmp_path / "default-index"))
    monkeypatch.setenv("PAPERSIFT_LISTS", str(tmp_path / "lists.sqlite"))
    monkeypatch.delenv("PAPERSIFT_MODEL", raising=False)


TOPICS = {
    "diffusion": "diffusion denoising score sampler image generation noise schedule",
    "graphs": "graph neural network message passing node edge molecule",
    "retrieval": "retrieval passage dense index question answering reranker",
    "proteins": "protein folding structure residue amino sequence",
}


def topic_corpus(per_topic: int = 12) -> list[dict]:
    """Papers in four clearly separated topics, each with its own words (for maps and
    recommendations with a known answer). Ids say the topic: diffusion-03, graphs-11, ..."""
    import random

    rng = random.Random(5)
    records = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for i in range(per_topic):
            picked = rng.sample(vocab, 5)
            records.append({
                "id": f"{topic}-{i:02d}",
                "title": f"{vocab[0].title()} {vocab[1]} study {i}",
                "abstract": " ".join(picked + rng.sample(vocab, 4)),
                "authors": [f"Author {topic} {i}"], "categories": ["cs.LG"],
                "published": f"2024-{1 + i % 12:02d}-{1 + i:02d}",
            })
    return records


@pytest.fixture
def topic_index(tmp_path, fake_encoder) -> Path:
    from indexer.build import build_index

    root = tmp_path / "topics"
    build_index([write_jsonl(tmp_path / "topics.jsonl", topic_corpus())], root, fake_encoder)
    return root


@pytest.fixture(scope="session")
def real_encoder():
    from indexer.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(precision="auto")


@pytest.fixture(scope="session")
def bundled_300(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "papers-300.jsonl"
    with BUNDLED.open(encoding="utf-8") as src:
        path.write_text("".join(line for _, line in zip(range(300), src, strict=False)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, bundled_300, real_encoder) -> Path:
    """300 bundled papers encoded with the real packaged model, built once per session."""
    from indexer.build import build_index

    root = tmp_path_factory.mktemp("real") / "index"
    build_index([bundled_300], root, real_encoder)
    return root


@pytest.fixture
def real_index_copy(tmp_path, real_index) -> Path:
    dest = tmp_path / "index-copy"
    shutil.copytree(real_index, dest)
    return dest


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, real_encoder) -> Path:
    """All 2,000 bundled papers with the real packaged model, built once per session
    (whole-abstract vectors only: windows would double the build, and `real_index` has
    them)."""
    from indexer.build import build_index

    root = tmp_path_factory.mktemp("bundled") / "index"
    build_index([BUNDLED], root, real_encoder, with_windows=False)
    return root


@pytest.fixture
def run(monkeypatch, capsys):
    """The CLI in this process (`ui.cli.main`) with the fake encoder: (exit code, stdout,
    stderr) of one command."""
    from ui import clikit
    from ui.cli import main

    monkeypatch.setattr(clikit, "make_encoder", lambda *a, **k: FakeEncoder())
    monkeypatch.setattr(clikit, "make_query_encoder", lambda *a, **k: FakeEncoder())

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@contextlib.contextmanager
def another_writer(root):
    """Hold `root`'s write lock from another thread (another writer at work) meanwhile."""
    import threading

    from indexer import store

    held, release = threading.Event(), threading.Event()

    def writer():
        with store.writer_lock(root):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.fixture(scope="session")
def ray_local_cluster():
    """A real two-node Ray cluster on loopback (tests/ray_cluster.py), started once per
    session and torn down by PID. Skipped where Ray is not installed, except in CI."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    from tests.ray_cluster import LocalCluster

    cluster = LocalCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_cluster(ray_local_cluster) -> str:
    """The address (127.0.0.1:PORT) of the session's two-node Ray cluster."""
    return ray_local_cluster.address
