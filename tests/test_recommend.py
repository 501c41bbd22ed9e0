"""More like these: Rocchio and SVM directions, and Searcher.recommend on a toy set."""

import numpy as np
import pytest

from indexer.errors import InvalidQuery, UnknownPaper
from search import Searcher
from search.recommend import background_rows, rocchio, svm
from search.searcher import Filters


def test_rocchio_is_the_normalised_mean_minus_the_disliked():
    liked = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    v = rocchio(liked, np.zeros((0, 3), np.float32))
    np.testing.assert_allclose(v, [2 ** -0.5, 2 ** -0.5, 0], atol=1e-6)
    v = rocchio(liked, np.array([[0, 1, 0]], np.float32), beta=0.5)
    np.testing.assert_allclose(v, [1, 0, 0], atol=1e-6)


def test_svm_direction_separates_liked_from_background():
    rng = np.random.default_rng(0)
    background = rng.standard_normal((300, 8)).astype(np.float32)
    liked = rng.standard_normal((5, 8)).astype(np.float32) * 0.1 + np.eye(8, dtype=np.float32)[2] * 3
    w = svm(liked, np.zeros((0, 8), np.float32), background)
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-5)
    assert np.argmax(w) == 2
    assert (liked @ w).min() > np.percentile(background @ w, 95)


def test_background_sample_is_seeded_and_avoids_the_given_rows():
    a = background_rows(1000, {1, 2, 3}, size=100, seed=4)
    assert len(a) == 100 and not {1, 2, 3} & set(a.tolist())
    np.testing.assert_array_equal(a, background_rows(1000, {1, 2, 3}, size=100, seed=4))
    assert len(background_rows(5, {0, 1, 2, 3, 4})) == 0


@pytest.mark.parametrize("method", ["rocchio", "svm"])
def test_recommend_known_answer(topic_index, method):
    searcher = Searcher(topic_index)
    hits = searcher.recommend(["graphs-00", "graphs-01", "graphs-02"], k=9, method=method)
    ids = [h.id for h in hits]
    assert all(i.startswith("graphs-") for i in ids), ids
    assert not {"graphs-00", "graphs-01", "graphs-02"} & set(ids)  # inputs never come back
    assert [h.rank for h in hits] == list(range(1, 10))


@pytest.mark.parametrize("method", ["rocchio", "svm"])
def test_unliked_papers_push_their_topic_down(topic_index, method):
    searcher = Searcher(topic_index)
    like = ["diffusion-00", "retrieval-00"]  # two topics liked equally
    def gap(hits):  # how far diffusion papers score above retrieval ones
        score = {t: np.mean([h.score for h in hits if h.id.startswith(t)]) for t in ("diff", "retr")}
        return score["diff"] - score["retr"]

    before = searcher.recommend(like, k=40, method=method)
    after = searcher.recommend(like, ["retrieval-01", "retrieval-02"], k=40, method=method)
    assert gap(after) > gap(before) + 0.05
    assert after[0].id.startswith("diffusion-")


def test_recommend_applies_filters_and_sort(topic_index):
    searcher = Searcher(topic_index)
    hits = searcher.recommend(["proteins-00"], k=5, filters=Filters(since="2024-06-01"))
    assert hits and all(h.paper.published >= "2024-06-01" for h in hits)
    newest = searcher.recommend(["proteins-00"], k=5, sort="newest")
    dates = [h.paper.published for h in newest]
    assert dates == sorted(dates, reverse=True)


def test_recommend_rejects_bad_input(topic_index):
    searcher = Searcher(topic_index)
    with pytest.raises(InvalidQuery, match="at least one paper"):
        searcher.recommend([])
    with pytest.raises(UnknownPaper, match="nope"):
        searcher.recommend(["graphs-00", "nope"])
    with pytest.raises(InvalidQuery, match="graphs-00 is both liked and unliked"):
        searcher.recommend(["graphs-00"], ["graphs-00"])
    with pytest.raises(InvalidQuery, match="method must be one of rocchio, svm"):
        searcher.recommend(["graphs-00"], method="knn")
