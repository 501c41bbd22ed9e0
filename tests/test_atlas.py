"""The map: layout, clusters, c-TF-IDF names, storage with the generation, updates."""

import json

import numpy as np
import pytest

from indexer import atlas
from indexer.errors import IndexCorrupt
from indexer.store import MAP_DIR, current_generation, open_index, read_atlas, write_atlas
from tests.conftest import TOPICS, topic_corpus, write_jsonl


def blobs(n_per: int = 150, centres: int = 4, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)) * 3
    x = np.vstack([c[i] + rng.standard_normal((n_per, dim)) for i in range(centres)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    truth = np.repeat(np.arange(centres), n_per)
    vocab = list(TOPICS.values())
    texts = [vocab[t] + f" paper {i}" for i, t in enumerate(truth)]
    return x, texts, truth


def test_pca_map_shape_range_and_determinism():
    x, texts, _ = blobs(30)
    a = atlas.compute(x, texts, seed=3)
    b = atlas.compute(x, texts, seed=3)
    assert a.info["method"] == "pca"  # 120 papers: below the UMAP threshold
    assert a.coords.shape == (120, 2) and a.coords.dtype == np.float32
    assert np.abs(a.coords).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.clusters, b.clusters)
    assert a.labels == b.labels


def test_umap_map_is_seeded_and_keeps_clusters_apart():
    x, texts, truth = blobs(150)
    a = atlas.compute(x, texts, seed=7, method="umap")
    b = atlas.compute(x, texts, seed=7, method="umap")
    assert a.info["method"] == "umap"
    np.testing.assert_array_equal(a.coords, b.coords)
    # Points of one true blob sit closer to their own centre than to any other.
    centres = np.array([a.coords[truth == t].mean(axis=0) for t in range(4)])
    nearest = np.argmin(((a.coords[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == truth).mean() > 0.95


def test_clusters_follow_the_vectors_and_labels_name_their_topic():
    x, texts, truth = blobs(40)
    a = atlas.compute(x, texts, k=4)
    assert len(a.labels) == 4 and sorted(a.sizes) == [40, 40, 40, 40]
    for c in range(4):  # each cluster is one true blob
        assert len(set(truth[a.clusters == c])) == 1
    assert all(label.strip() for label in a.labels)
    assert len(set(a.labels)) == 4
    for c in range(4):
        topic_words = set(list(TOPICS.values())[truth[a.clusters == c][0]].split())
        assert set(a.terms[c][0].split()) <= topic_words, (a.terms[c], topic_words)
        assert "paper" not in a.labels[c]  # boilerplate words never name a topic


def test_labels_stay_distinct_when_top_terms_collide():
    labels = atlas._distinct_labels([["a", "b", "c", "d"], ["a", "b", "c", "e"], ["a", "b", "c"]])
    assert labels[0] == "a, b, c" and labels[1] == "a, b, c, e"
    assert len(set(labels)) == 3


def test_tiny_and_degenerate_inputs():
    assert atlas.compute(np.zeros((0, 8), np.float32), []).coords.shape == (0, 2)
    one = atlas.compute(np.eye(1, 8, dtype=np.float32), ["only paper"])
    assert one.coords.shape == (1, 2) and one.labels and one.clusters.tolist() == [0]
    empty_text = atlas.compute(np.eye(6, 8, dtype=np.float32), [""] * 6)
    assert all(empty_text.labels) and len(set(empty_text.labels)) == len(empty_text.labels)
    with pytest.raises(ValueError, match="3 vectors but 2 texts"):
        atlas.compute(np.eye(3, 8, dtype=np.float32), ["a", "b"])


def test_map_index_stores_the_map_and_it_round_trips(topic_index):
    gen, made = atlas.map_index(topic_index, seed=1)
    handle = open_index(topic_index)
    loaded = read_atlas(handle.generation, handle.count)
    np.testing.assert_array_equal(loaded.coords, made.coords)
    np.testing.assert_array_equal(loaded.clusters, made.clusters)
    assert loaded.labels == made.labels and loaded.info["seed"] == 1
    assert loaded.info["count"] == handle.count == 48
    open_index(topic_index, verify=True)  # the map is beside the manifest, never inside it


def test_a_broken_map_is_reported_not_served(topic_index):
    atlas.map_index(topic_index)
    gen = current_generation(topic_index)
    meta = json.loads((gen / MAP_DIR / "atlas.json").read_text())
    meta["labels"] = meta["labels"][:1]
    meta["terms"] = meta["terms"][:1]
    (gen / MAP_DIR / "atlas.json").write_text(json.dumps(meta))
    with pytest.raises(IndexCorrupt, match="does not fit 48 papers"):
        read_atlas(gen, 48)
    (gen / MAP_DIR / "atlas.json").write_text("{nope")
    with pytest.raises(IndexCorrupt, match="not valid JSON"):
        read_atlas(gen, 48)


def test_writing_a_map_again_replaces_it_whole(topic_index):
    atlas.map_index(topic_index, seed=1)
    gen = current_generation(topic_index)
    x = np.asarray(open_index(topic_index).vectors, dtype=np.float32)
    write_atlas(gen, atlas.compute(x, ["t"] * len(x), k=2, seed=2))
    assert len(read_atlas(gen, len(x)).labels) == 2
    assert sorted(p.name for p in gen.iterdir() if "map" in p.name) == [MAP_DIR]


def test_build_with_map_and_update_rebuilds_it(tmp_path, fake_encoder):
    from indexer.build import build_index
    from indexer.update import update_index

    root = tmp_path / "ix"
    build_index([write_jsonl(tmp_path / "a.jsonl", topic_corpus())], root, fake_encoder,
                with_map=True)
    first = read_atlas(current_generation(root), 48)
    assert first is not None and first.info["count"] == 48
    extra = [{"id": "proteins-99", "title": "Protein residue folding",
              "abstract": "protein folding residue structure amino", "published": "2025-01-01"}]
    update_index([write_jsonl(tmp_path / "b.jsonl", extra)], root, fake_encoder)
    second = read_atlas(current_generation(root), 49)
    assert second is not None and second.coords.shape == (49, 2)


def test_a_rebuild_keeps_the_map_unless_told_not_to(topic_index, tmp_path, fake_encoder):
    from indexer.build import build_index

    atlas.map_index(topic_index)
    corpus = write_jsonl(tmp_path / "again.jsonl", topic_corpus())
    build_index([corpus], topic_index, fake_encoder)
    assert read_atlas(current_generation(topic_index), 48) is not None
    build_index([corpus], topic_index, fake_encoder, with_map=False)
    assert read_atlas(current_generation(topic_index), 48) is None


def test_an_index_without_a_map_updates_without_one(toy_index, tmp_path, fake_encoder):
    from indexer.update import update_index

    extra = [{"id": "2501.00001", "title": "New", "abstract": "new words", "published": "2025-01-01"}]
    update_index([write_jsonl(tmp_path / "b.jsonl", extra)], toy_index, fake_encoder)
    assert read_atlas(current_generation(toy_index), 6) is None
