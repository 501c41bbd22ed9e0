"""Index choice, the recall guard, and filtered search on an approximate index."""

import faiss
import numpy as np
import pytest

from indexer import ann
from indexer.build import build_index
from indexer.store import open_index
from search import Filters, Searcher
from tests.conftest import write_jsonl
from tests.fakes import FakeEncoder


def clustered(n, dim=32, centers=40, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_below_the_threshold_ivf_at_it(monkeypatch):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 4000)
    _, below = ann.build(clustered(3999))
    assert below["type"] == "IndexFlatIP" and below["exact"]
    index, at = ann.build(clustered(4000))
    assert at["type"] == "IndexIVFScalarQuantizer" and not at["exact"]
    assert at["codes"] == "int8" and at["refine"] == ann.REFINE
    assert at["recall_at_10"] >= ann.MIN_RECALL and at["nlist"] == ann.nlist_for(4000)
    assert faiss.extract_index_ivf(index).nprobe == at["nprobe"]


def test_recall_guard_falls_back_to_exact_on_unclusterable_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index, info = ann.build(x, "ivf")
    assert info["exact"] and info["fallback_from"].startswith("IVF")
    assert info["ivf_recall_at_10"] < ann.MIN_RECALL
    assert isinstance(index, faiss.IndexFlatIP)


def test_text_probe_takes_words_of_titles_and_abstracts_and_is_repeatable():
    titles = [f"Sparse attention kernels for long sequence transformers {i}" for i in range(50)]
    abstracts = [f"We study quantised retrieval. Scaling laws hold for tiny models {i}."
                 for i in range(50)]
    seen: list[list[str]] = []

    def encode(texts):
        seen.append(list(texts))
        return np.eye(len(texts), 8, dtype=np.float32) + 1.0

    probe = ann.text_probe(titles, abstracts, encode, sample=20, seed=3)
    again = ann.text_probe(titles, abstracts, encode, sample=20, seed=3)
    assert seen[0] == seen[1] and np.array_equal(probe.rows, again.rows)
    assert len(probe.rows) == 20 == len(set(probe.rows)) and probe.rows.max() < 50
    for i, text in enumerate(seen[0]):
        words = text.split()
        source = titles if i % 2 == 0 else abstracts
        assert len(words) == (3 if i % 2 == 0 else 8)
        assert all(len(w) >= 4 and w in source[probe.rows[i]] for w in words)
    assert np.allclose(np.linalg.norm(probe.vectors, axis=1), 1.0)
    assert ann.text_probe(titles, abstracts, lambda texts: None) is None  # no model here


def test_the_guard_leaves_each_query_s_own_paper_out():
    """A probe made from corpus rows: its own paper (always found, cosine 1) is not
    counted, so a guard that only finds the query's own paper scores 0, not 0.1."""
    x = clustered(2000, seed=5)
    exact = faiss.IndexFlatIP(32)
    exact.add(x)
    own_only = faiss.IndexIDMap(faiss.IndexFlatIP(32))
    rows = np.array([1234])
    own_only.add_with_ids(x[rows], rows)  # an index holding nothing but the query's row
    probe = ann.Probe(x[rows], rows, "rows")
    assert ann.recall_at_10(own_only, exact, probe) == 0.0
    assert ann.recall_at_10(exact, exact, probe) == 1.0
    blind = ann.Probe(x[rows], np.full(len(rows), -1), "rows")
    assert ann.recall_at_10(own_only, exact, blind) == pytest.approx(0.1)


def test_the_guard_probes_the_fewest_cells_that_reach_the_bar_for_its_queries(monkeypatch):
    """Whatever queries the guard is given, it keeps the smallest nprobe at which they reach
    MIN_RECALL (one step fewer misses it), and falls back to exact search when none does."""
    monkeypatch.setattr(ann, "EXACT_LIMIT", 4000)
    x = clustered(20_000, centers=200, seed=6)
    rng = np.random.default_rng(8)
    between = x[rng.choice(len(x), (300, 4))].sum(1)  # among four clusters, as questions sit
    between += rng.standard_normal((300, 32)).astype(np.float32)
    hard = ann.Probe(between / np.linalg.norm(between, axis=1, keepdims=True),
                     np.full(300, -1), "between clusters")
    for given, queries in ((None, ann.noise_probe(x)), (hard, hard)):
        index, info = ann.build(x, probe=(lambda g=given: g) if given else None)
        assert info["recall_guard"] == queries.describe()
        assert not info["exact"]
        refined = ann.Refined(index, x, info["refine"])  # as the searcher asks it
        recall = ann.recall_at_10(refined, _exact(x), queries)
        assert round(recall, 4) == info["recall_at_10"] and recall >= ann.MIN_RECALL
        fewer = ann.NPROBES[ann.NPROBES.index(info["nprobe"]) - 1]
        faiss.extract_index_ivf(index).nprobe = fewer
        assert ann.recall_at_10(refined, _exact(x), queries) < ann.MIN_RECALL
    monkeypatch.setattr(ann, "NPROBES", (4,))  # no nprobe it may try reaches the bar
    index, info = ann.build(x, probe=lambda: hard)
    assert info["exact"] and info["ivf_recall_at_10"] < ann.MIN_RECALL
    assert info["recall_guard"]["queries"] == "between clusters"
    assert isinstance(index, faiss.IndexFlatIP)


def _exact(x):
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index


def test_forced_flat():
    _, info = ann.build(clustered(5000), "flat")
    assert info["type"] == "IndexFlatIP"


class VectorEncoder(FakeEncoder):
    """Hands out pre-made vectors in order (the build encodes in its own order)."""

    def __init__(self, by_text):
        super().__init__(dim=32)
        self.by_text = by_text

    def encode(self, texts):
        if not all(t in self.by_text for t in texts):
            return None  # the recall guard's word queries: no model here, noisy vectors
        return np.stack([self.by_text[t] for t in texts])


@pytest.fixture
def ivf_index(tmp_path):
    n = 4000
    x = clustered(n)
    records = [{"id": f"2405.{i:05d}", "title": f"paper {i}", "published": f"2024-{1 + i % 12:02d}-01",
                "categories": ["cs.CL" if i % 7 else "cs.CV"]} for i in range(n)]
    enc = VectorEncoder({f"paper {i}": x[i] for i in range(n)})
    build_index([write_jsonl(tmp_path / "r.jsonl", records)], tmp_path / "ix", enc, index_type="ivf")
    return tmp_path / "ix", records, x, enc


def test_ivf_generation_opens_with_its_nprobe(ivf_index):
    root, *_ = ivf_index
    handle = open_index(root)
    info = handle.manifest["faiss"]
    assert info["type"] == "IndexIVFScalarQuantizer" and info["refine"] == ann.REFINE
    assert faiss.extract_index_ivf(handle.faiss_index).nprobe == info["nprobe"]


@pytest.mark.parametrize("exact_among", [20_000, 0])  # exact over the allowed rows / IVF + bitmap
@pytest.mark.parametrize("filters", [
    Filters(categories=("cs.CV",)),  # 1 in 7
    Filters(categories=("cs.CL",)),  # 6 in 7
    Filters(since="2024-03-01", until="2024-03-31", categories=("cs.CV",)),
    Filters(until="2024-02-01"),
])
def test_filtered_ivf_search_matches_brute_force(ivf_index, filters, exact_among, monkeypatch):
    from search import searcher as searcher_module

    monkeypatch.setattr(searcher_module, "EXACT_AMONG", exact_among)
    root, records, x, enc = ivf_index
    s = Searcher(root, enc)
    vectors = np.asarray(s.index.vectors)
    row_of = {p.id: r for r, p in enumerate(s.index.papers.all_papers())}
    query = x[11]
    allowed = [row_of[r["id"]] for r in records
               if (not filters.categories or set(r["categories"]) & set(filters.categories))
               and (not filters.since or filters.since <= r["published"])
               and (not filters.until or r["published"] <= filters.until)]
    expected = sorted(allowed, key=lambda i: -float(vectors[i] @ query))[:10]
    got = [row_of[h.id] for h in s.search_vector(query, 10, filters)]
    assert len(got) == 10
    overlap = len(set(got) & set(expected)) / 10
    assert overlap >= 0.9 if exact_among == 0 else overlap == 1.0
    assert np.array_equal(s.allowed_rows(filters), np.array(sorted(allowed)))


@pytest.mark.parametrize("index_type", ["flat", "ivf"])
def test_float16_storage_halves_memory_and_keeps_results(tmp_path, index_type):
    n = 4000
    x = clustered(n)
    records = [{"id": f"2406.{i:05d}", "title": f"paper {i}"} for i in range(n)]
    enc = VectorEncoder({f"paper {i}": x[i] for i in range(n)})
    path = write_jsonl(tmp_path / "r.jsonl", records)
    build_index([path], tmp_path / "f32", enc, index_type=index_type)
    build_index([path], tmp_path / "f16", enc, index_type=index_type, float16=True)
    a, b = Searcher(tmp_path / "f32", enc), Searcher(tmp_path / "f16", enc)
    assert b.index.manifest["vector_dtype"] == "float16"
    assert b.index.vectors.dtype == np.float16
    assert b.index.manifest["files"]["vectors.npy"]["size"] < 0.6 * a.index.manifest["files"][
        "vectors.npy"]["size"]
    sizes = [h.index.manifest["files"]["faiss.index"]["size"] for h in (a, b)]
    if index_type == "flat":
        assert sizes[1] < 0.6 * sizes[0]
    else:  # 8-bit codes either way (a byte per dimension), re-scored on the stored vectors
        assert sizes[0] == sizes[1] < 0.3 * n * 32 * 4 + 64 * 1024
        assert a.index.manifest["faiss"]["codes"] == b.index.manifest["faiss"]["codes"] == "int8"
    for q in (3, 77, 1234):
        got = [h.id for h in b.search_vector(x[q], 10)]
        want = [h.id for h in a.search_vector(x[q], 10)]
        assert len(set(got) & set(want)) >= 9
    assert b.similar("2406.00003", k=5)[0].id == a.similar("2406.00003", k=5)[0].id


def test_update_adds_to_a_trained_ivf_index_and_keeps_ids_right(tmp_path, monkeypatch):
    from indexer.update import update_index

    # the noisy-vector guard on these tight 32-dimension clusters tops out at 0.97 once
    # retrained on 10,000 (nlist 256, nprobe at most 64): a bar it meets keeps IVF
    monkeypatch.setattr(ann, "MIN_RECALL_NOISE", 0.95)
    x = clustered(6000, seed=4)
    vec_of = {f"paper {i}": x[i] for i in range(6000)}
    enc = VectorEncoder(vec_of)
    first = [{"id": f"2407.{i:05d}", "title": f"paper {i}"} for i in range(4000)]
    build_index([write_jsonl(tmp_path / "a.jsonl", first)], tmp_path / "ix", enc, index_type="ivf")
    trained = open_index(tmp_path / "ix").manifest["faiss"]
    # 500 new papers, and paper 7 now has the text (and so the vector) of paper 5999
    new = [{"id": f"2407.{i:05d}", "title": f"paper {i}"} for i in range(4000, 4500)]
    changed = [{"id": "2407.00007", "title": "paper 5999"}]
    report = update_index([write_jsonl(tmp_path / "b.jsonl", new + changed)], tmp_path / "ix", enc)
    assert (report.added, report.changed, report.encoded) == (500, 1, 501)
    info = open_index(tmp_path / "ix").manifest["faiss"]
    assert info["type"] == "IndexIVFScalarQuantizer" and info["trained_on"] == trained["trained_on"] == 4000
    assert info["added_since_training"] == 500
    assert info["recall_at_10"] >= ann.MIN_RECALL_NOISE - ann.UPDATE_SLACK
    s = Searcher(tmp_path / "ix", enc)
    assert s.search_vector(x[4321], 1)[0].id == "2407.04321"  # a new row
    assert s.search_vector(x[5999], 1)[0].id == "2407.00007"  # a changed row, re-added
    assert s.search_vector(x[7], 1)[0].id != "2407.00007"  # its old vector is gone

    more = [{"id": f"2407.{i:05d}", "title": f"paper {i}"} for i in range(4500, 6000)]
    many = [{"id": f"2408.{i:05d}", "title": f"paper {i}"} for i in range(0, 4000)]
    update_index([write_jsonl(tmp_path / "c.jsonl", more + many)], tmp_path / "ix", enc)
    info = open_index(tmp_path / "ix").manifest["faiss"]
    assert info["trained_on"] == 10000  # more than doubled: retrained


def _worded(n: int) -> list[dict]:
    rng = np.random.default_rng(9)
    vocab = [f"{a}{b}" for a in ("graph", "vision", "speech", "robot", "protein", "quantum",
                                 "policy", "kernel", "sparse", "diffusion")
             for b in ("net", "model", "flow", "search", "field", "learning", "coding")]
    return [{"id": f"2409.{i:05d}", "title": " ".join(rng.choice(vocab, 6)),
             "abstract": ". ".join(" ".join(rng.choice(vocab, 9)) for _ in range(3)) + "."}
            for i in range(n)]


def test_a_build_guards_recall_with_words_of_its_papers(tmp_path, capsys):
    """The encoder that made the vectors encodes the guard's queries; `info` says so."""
    from ui.cli import main

    enc = FakeEncoder(dim=64)
    path = write_jsonl(tmp_path / "r.jsonl", _worded(3000))
    build_index([path], tmp_path / "ix", enc, index_type="ivf", with_windows=False)
    info = open_index(tmp_path / "ix").manifest["faiss"]
    assert info["recall_guard"] == {"queries": "words of titles and abstracts", "sample": 500}
    assert main(["info", "--index", str(tmp_path / "ix")]) == 0
    out = capsys.readouterr().out
    assert "for 500 queries of words of titles and abstracts" in out


def _imported_guard(tmp_path, dim: int, model_name: str) -> str:
    """Which queries guarded an IVF index built from imported vectors of `model_name`."""
    records = _worded(3000)
    path = write_jsonl(tmp_path / "r.jsonl", records)
    vectors = tmp_path / "v.npy"
    np.save(vectors, FakeEncoder(dim=dim).encode([r["title"] for r in records]))
    build_index([path], tmp_path / "ix", None, index_type="ivf", vectors_path=vectors,
                model_name=model_name)
    return open_index(tmp_path / "ix").manifest["faiss"]["recall_guard"]["queries"]


def test_imported_vectors_without_their_model_here_are_guarded_with_noisy_vectors(tmp_path):
    assert _imported_guard(tmp_path, 64, "no-such-org/no-such-model") == "noisy corpus vectors"


def test_refined_ivf_answers_the_exact_top_k_with_exact_scores(ivf_index):
    """8-bit codes choose the candidates; the stored vectors rank and score them: with every
    cell probed, the answer is exact search's, rows and scores."""
    root, records, x, enc = ivf_index
    s = Searcher(root, enc)
    info = s.index.manifest["faiss"]
    assert info["codes"] == "int8" and info["refine"] == ann.REFINE
    faiss.extract_index_ivf(s.index.faiss_index).nprobe = info["nlist"]
    vectors = np.asarray(s.index.vectors, dtype=np.float32)
    row_of = {p.id: r for r, p in enumerate(s.index.papers.all_papers())}
    for q in (5, 99, 2024, 3999):
        exact = vectors @ x[q]
        want = np.lexsort((np.arange(len(exact)), -exact))[:10]
        hits = s.search_vector(x[q], 10)
        assert [row_of[h.id] for h in hits] == want.tolist()
        assert np.allclose([h.score for h in hits], exact[want], atol=1e-6)


def test_an_update_probes_more_cells_before_it_retrains(monkeypatch):
    """An IVF index whose recorded nprobe no longer reaches the bar (chosen under an older,
    lower bar, or before papers were added) is kept at the fewest cells that do reach it."""
    monkeypatch.setattr(ann, "EXACT_LIMIT", 4000)
    x = clustered(20_000, centers=200, seed=6)
    index, info = ann.build(x[:15_000])
    assert info["nprobe"] > 4
    old = {**info, "nprobe": 4}
    faiss.extract_index_ivf(index).nprobe = 4
    extended, new = ann.extend(index, old, x, np.zeros(0, np.int64), 15_000)
    assert new["nprobe"] > 4 and new["recall_at_10"] >= ann.MIN_RECALL
    assert new["trained_on"] == 15_000 and new["added_since_training"] == 5_000
    assert extended.ntotal == 20_000


@pytest.mark.model
def test_imported_vectors_of_the_packaged_model_are_guarded_with_its_words(tmp_path):
    assert _imported_guard(tmp_path, 384, "sentence-transformers/all-MiniLM-L6-v2") == (
        "words of titles and abstracts")


@pytest.mark.parametrize("field,value", [
    ("refine", 0), ("refine", -1), ("refine", "4"), ("refine", 10**9), ("refine", 2.5),
    ("recall_guard", "noise"), ("recall_guard", ["x"]), ("recall_guard", {"queries": 3}),
    ("codes", 8),
])
def test_a_damaged_faiss_entry_is_one_line_naming_the_manifest(ivf_index, field, value):
    import json

    from indexer import store
    from indexer.errors import IndexCorrupt

    root, *_ = ivf_index
    gen = root / (root / "CURRENT").read_text().strip()
    manifest = json.loads((gen / store.MANIFEST).read_text())
    manifest["faiss"][field] = value
    (gen / store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match=rf"manifest.json: field 'faiss.{field}'") as e:
        open_index(root)
    assert "\n" not in str(e.value)


def test_an_update_keeps_its_index_through_the_guard_s_sampling_noise(monkeypatch):
    """A fresh sample after a one-paper update measures a little below the bar: the index
    and its nprobe stay (the update must not retrain, nor turn an IVF index exact)."""
    monkeypatch.setattr(ann, "EXACT_LIMIT", 4000)
    x = clustered(20_000, centers=200, seed=6)
    index, info = ann.build(x[:19_999])
    just_below = ann.Probe(ann.noise_probe(x).vectors, np.full(500, -1), "words")
    monkeypatch.setattr(ann, "MIN_RECALL", info["recall_at_10"] + ann.UPDATE_SLACK / 2)
    kept = ann.extend(index, info, x, np.zeros(0, np.int64), 19_999, probe=lambda: just_below)
    assert kept is not None and kept[1]["nprobe"] == info["nprobe"]
    monkeypatch.setattr(ann, "MIN_RECALL", 1.01)  # far below the bar at every nprobe
    assert ann.extend(index, info, x, np.zeros(0, np.int64), 19_999,
                      probe=lambda: just_below) is None
