import numpy as np
import pytest

from indexer.build import build_index
from indexer.errors import InvalidQuery, ModelMismatch, UnknownPaper
from search import Filters, Searcher
from search.searcher import MAX_K
from tests.conftest import TOY, write_jsonl
from tests.fakes import FakeEncoder


@pytest.fixture
def searcher(toy_index, fake_encoder):
    return Searcher(toy_index, fake_encoder)


def test_search_ranks_best_match_first(searcher):
    hits = searcher.search("distil a diffusion model into one step", k=3)
    assert hits[0].id == "2401.00002"
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].to_dict() == {
        "rank": 1, "id": "2401.00002", "score": round(hits[0].score, 4),
        "title": "Diffusion models distilled into one step",
        "authors": ["Grace Hopper", "Edsger Dijkstra"], "published": "2024-02-10",
        "categories": ["cs.CV", "cs.LG"], "url": "https://arxiv.org/abs/2401.00002",
        "sources": {"dense": 1, "bm25": 1},
    }


def test_k_larger_than_index_returns_every_paper_once(searcher):
    hits = searcher.search("anything at all", k=MAX_K)
    assert sorted(h.id for h in hits) == sorted(r["id"] for r in TOY)


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1])
def test_k_out_of_range(searcher, k):
    with pytest.raises(InvalidQuery, match="k must be between 1 and 1000"):
        searcher.search("graph", k=k)
    with pytest.raises(InvalidQuery, match="k must be between 1 and 1000"):
        searcher.similar("2401.00001", k=k)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(searcher, query):
    with pytest.raises(InvalidQuery, match="empty query"):
        searcher.search(query)


def test_similar_excludes_the_paper_itself(searcher):
    hits = searcher.similar("2401.00002", k=10)
    ids = [h.id for h in hits]
    assert "2401.00002" not in ids
    assert len(ids) == len(TOY) - 1
    assert ids[0] == "2401.00005"  # the other diffusion paper


def test_similar_accepts_urls_and_versions(searcher):
    a = searcher.similar("https://arxiv.org/abs/2401.00002v3", k=2)
    b = searcher.similar("arXiv:2401.00002", k=2)
    assert [h.id for h in a] == [h.id for h in b]


def test_similar_uses_stored_vectors_without_a_model(toy_index):
    searcher = Searcher(toy_index)
    assert searcher.similar("2401.00002", k=1)[0].id == "2401.00005"
    with pytest.raises(InvalidQuery, match="without a model"):
        searcher.search("diffusion")


def test_unknown_paper(searcher):
    with pytest.raises(UnknownPaper, match="unknown paper id '9999.99999'"):
        searcher.similar("9999.99999")
    with pytest.raises(UnknownPaper):
        searcher.paper("nope")


def test_model_mismatch_on_open(toy_index):
    with pytest.raises(ModelMismatch):
        Searcher(toy_index, FakeEncoder(name="fake/other", seed="x"))


def test_filters_act_inside_retrieval(searcher):
    # Only one paper is in q-bio.BM and about proteins; it still fills k when k matches exist.
    hits = searcher.search("diffusion image generation", k=2, filters=Filters(categories=("q-bio.BM",)))
    assert sorted(h.id for h in hits) == ["2401.00001", "2401.00004"]
    hits = searcher.search("diffusion", k=10, filters=Filters(since="2024-02-01", until="2024-04-30"))
    assert sorted(h.id for h in hits) == ["2401.00002", "2401.00003", "2401.00004"]
    hits = searcher.search("diffusion", k=10, filters=Filters(author="hopper"))
    assert [h.id for h in hits] == ["2401.00002"]
    assert searcher.search("x", k=5, filters=Filters(author="nobody_%")) == []
    hits = searcher.similar("2401.00002", k=10, filters=Filters(categories=("cs.CV",)))
    assert [h.id for h in hits] == ["2401.00005"]


def test_filtered_results_match_brute_force_on_random_vectors(tmp_path):
    rng = np.random.default_rng(0)
    records = [
        {"id": f"2402.{i:05d}", "title": f"paper {i}", "published": f"2024-{1 + i % 12:02d}-01",
         "categories": ["cs.CL" if i % 3 else "cs.CV"]}
        for i in range(300)
    ]
    path = write_jsonl(tmp_path / "r.jsonl", records)

    class RandomEncoder(FakeEncoder):
        def encode(self, texts):
            v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    enc = RandomEncoder(dim=16)
    build_index([path], tmp_path / "ix", enc)
    s = Searcher(tmp_path / "ix", enc)
    vectors = np.asarray(s.index.vectors)
    query = vectors[7]
    f = Filters(since="2024-03-01", until="2024-06-30", categories=("cs.CV",))
    allowed = [i for i, r in enumerate(records)
               if "2024-03-01" <= r["published"] <= "2024-06-30" and "cs.CV" in r["categories"]]
    expected = sorted(allowed, key=lambda i: -float(vectors[i] @ query))[:10]
    got = s.search_vector(query, 10, f)
    assert [h.id for h in got] == [records[i]["id"] for i in expected]


def test_sort_newest_and_upvotes_reorder_the_relevant_pool(searcher):
    newest = searcher.search("diffusion models", k=5, sort="newest")
    assert [h.paper.published for h in newest] == sorted(
        (h.paper.published for h in newest), reverse=True)
    assert [h.rank for h in newest] == [1, 2, 3, 4, 5]
    assert searcher.search("questions", k=1, sort="upvotes")[0].id == "2401.00003"
    with pytest.raises(InvalidQuery, match="sort must be one of"):
        searcher.search("x", sort="best")


def test_categories_with_counts(searcher):
    assert searcher.categories[0] in (("cs.LG", 2), ("cs.CV", 2), ("q-bio.BM", 2))
    assert dict(searcher.categories)["cs.CL"] == 1


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_modes_and_sources(searcher, mode):
    hits = searcher.search("protein structure attention", k=3, mode=mode)
    assert hits[0].id == "2401.00004"
    expected = {"hybrid": {"dense", "bm25"}, "dense": {"dense"}, "bm25": {"bm25"}}[mode]
    assert set(hits[0].sources) == expected
    assert all(rank >= 1 for rank in hits[0].sources.values())


def test_bm25_finds_exact_terms_the_dense_side_ranks_low(searcher):
    # "message passing" appears in one abstract only
    assert searcher.search("message passing", k=1, mode="bm25")[0].id == "2401.00001"
    assert searcher.search("zzzunknownword", k=5, mode="bm25") == []
    with pytest.raises(InvalidQuery, match="mode must be one of"):
        searcher.search("x", mode="fast")


def test_hybrid_respects_filters_and_k(searcher):
    hits = searcher.search("diffusion", k=2, filters=Filters(categories=("cs.CV",)))
    assert len(hits) == 2 and all("cs.CV" in h.paper.categories for h in hits)


def test_scores_sit_on_a_fixed_scale(searcher):
    """No per-query rescaling: a query that matches nothing well scores low, not 1.0."""
    good = searcher.search("distil a diffusion model into one step", k=1)[0]
    poor = searcher.search("zebra quasar umbrella", k=1)
    assert 0.0 < good.score <= 1.0
    assert not poor or poor[0].score < good.score / 2


def test_relevance_floor_leaves_out_distant_papers(toy_index, fake_encoder):
    s = Searcher(toy_index, fake_encoder, floor=0.3)
    results = s.query("zebra quasar umbrella", k=5)
    assert results.hits == [] and results.no_close_matches
    assert results.below_floor == 5 and results.best_dense < 0.3
    close = s.query("distil a diffusion model into one step", k=5)
    assert close.hits[0].id == "2401.00002" and not close.no_close_matches
    assert 0 < len(close.hits) < 5 and close.below_floor == 5 - len(close.hits)
    # newest and upvotes reorder only the papers above the floor
    newest = s.query("distil a diffusion model into one step", k=5, sort="newest").hits
    assert {h.id for h in newest} == {h.id for h in close.hits}


def test_floor_is_the_default_models_only(toy_index, fake_encoder):
    assert Searcher(toy_index, fake_encoder).floor is None  # fake model: no floor
    assert Searcher(toy_index, fake_encoder, floor=0.0).floor is None


def test_floor_keeps_a_paper_on_either_sides_evidence(toy_index, fake_encoder):
    """A paper BM25 does not match stays when its meaning is close, whatever the weight."""
    from search.hybrid import Floor

    meaning_only = Searcher(toy_index, fake_encoder, floor=Floor(dense=0.0, bm25=2.0))
    keywords_only = Searcher(toy_index, fake_encoder, floor=Floor(dense=2.0, bm25=1e-6))
    q = "message passing graph networks"
    assert len(meaning_only.search(q, k=5)) == 5  # every cosine >= 0
    kept = keywords_only.search(q, k=5)
    assert kept[0].id == "2401.00001" and len(kept) < 5
    assert all("bm25" in h.sources for h in kept)  # only papers sharing a word


def test_query_of_stopwords_and_punctuation_uses_meaning_alone(searcher):
    results = searcher.query("the of ?! and", k=3)
    assert all(set(h.sources) == {"dense"} for h in results.hits)


def test_spelling_correction_taken_when_it_matches_better(searcher):
    results = searcher.query("difusion imgae generation", k=3)
    assert results.corrected and results.query == "diffusion image generation"
    assert results.typed == "difusion imgae generation"
    assert results.hits[0].id in ("2401.00002", "2401.00005")
    as_typed = searcher.query("difusion imgae generation", k=3, correct=False)
    assert not as_typed.corrected and as_typed.query == as_typed.typed
    assert not searcher.query("diffusion image generation", k=3).corrected


def test_related_work_uses_both_sides(searcher):
    hits = searcher.similar("2401.00002", k=4)
    assert hits[0].id == "2401.00005"
    assert any("bm25" in h.sources for h in hits) and any("dense" in h.sources for h in hits)
    assert all(0.0 <= h.score <= 1.0 for h in hits)


class _ThreadRecordingEncoder(FakeEncoder):
    """Records the thread each query is encoded on; fails on request."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.threads: list[str] = []
        self.fail = fail

    def encode(self, texts):
        import threading

        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("encoder broke")
        return super().encode(texts)


def test_hybrid_encodes_on_the_overlap_thread_and_answers_as_dense_plus_bm25(toy_index):
    import threading

    overlapped = Searcher(toy_index, _ThreadRecordingEncoder())
    hits = overlapped.search("distil a diffusion model into one step", k=5, mode="hybrid")
    assert overlapped.encoder.threads[-1].startswith("papersift-dense")
    dense = overlapped.search("distil a diffusion model into one step", k=5, mode="dense")
    assert overlapped.encoder.threads[-1] == threading.current_thread().name
    assert hits[0].id == dense[0].id == "2401.00002"
    # same answers as a sequential search: every candidate's scores are computed the same
    plain = Searcher(toy_index, FakeEncoder())
    assert ([(h.id, round(h.score, 6)) for h in hits]
            == [(h.id, round(h.score, 6)) for h in plain.search(
                "distil a diffusion model into one step", k=5, mode="hybrid")])


def test_an_encoder_failure_in_hybrid_reaches_the_caller(toy_index):
    broken = Searcher(toy_index, _ThreadRecordingEncoder(fail=True))
    with pytest.raises(RuntimeError, match="encoder broke"):
        broken.search("graph networks", mode="hybrid")


def test_every_searching_thread_uses_one_openmp_thread(toy_index, fake_encoder):
    """OpenMP's thread count is per calling thread: a request thread of the API or the app
    must search on one, as the thread that opened the index does."""
    import threading

    import faiss

    searcher = Searcher(toy_index, fake_encoder)
    seen = []

    def request():
        searcher.search("graph networks", k=3, mode="dense")
        seen.append(faiss.omp_get_max_threads())

    t = threading.Thread(target=request)
    t.start()
    t.join()
    assert seen == [1]


def test_an_author_filter_asks_the_table_once_for_many_questions(toy_index, fake_encoder,
                                                                 monkeypatch):
    searcher = Searcher(toy_index, fake_encoder)
    asked = []
    real = searcher.index.papers.rows_matching
    monkeypatch.setattr(searcher.index.papers, "rows_matching",
                        lambda **kw: asked.append(kw) or real(**kw))
    by_hopper = Filters(author="Grace Hopper")
    first = searcher.search("diffusion", k=5, filters=by_hopper)
    again = searcher.search("graph networks", k=5, filters=by_hopper)
    assert first and again and asked == [{"author": "Grace Hopper"}]
    assert all("Grace Hopper" in h.paper.authors for h in first + again)
    assert searcher.search("diffusion", k=5, filters=Filters(author="Dijkstra"))
    assert len(asked) == 2
