"""The fusion function, its query features and the adaptive weight: golden values."""

import math

import numpy as np
import pytest

from search import hybrid
from search.hybrid import ADAPTIVE, FEATURES, Fusion, adaptive_weight, fuse, query_features


def test_convex_combination_on_fixed_scales():
    dense_rows, bm25_rows = np.array([3, 1]), np.array([2, 3])
    # union [1, 2, 3]: cosines and BM25 shares of the ceiling
    dense = np.array([0.8, 0.2, 0.6])
    bm25 = np.array([0.0, 0.9, 0.5])
    rows, scores = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("convex"), weight=0.5)
    assert rows.tolist() == [2, 3, 1]
    assert scores == pytest.approx([0.55, 0.55, 0.4])  # tie: the lower row first (stable)
    rows, scores = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("convex"), weight=0.9)
    assert rows.tolist() == [1, 3, 2]
    assert scores == pytest.approx([0.72, 0.59, 0.27])
    rows, scores = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("convex"), weight=0.0)
    assert rows.tolist() == [2, 3, 1] and scores == pytest.approx([0.9, 0.5, 0.0])


def test_no_per_query_rescaling_weak_matches_stay_weak():
    """The old min-max blend gave every query's top hit 1.0; the convex scores do not."""
    dense_rows, bm25_rows = np.array([1, 2]), np.array([1])
    dense, bm25 = np.array([0.12, 0.10]), np.array([0.05, 0.0])
    _, minmax = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("minmax"))
    assert minmax[0] == pytest.approx(1.0)
    _, convex = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("convex"), weight=0.5)
    assert convex.max() < 0.1


def test_scores_are_clipped_to_zero_one():
    rows, scores = fuse(np.array([1]), np.array([-0.3, 1.2]), np.array([2]),
                        np.array([0.0, 1.5]), Fusion("convex"), weight=0.5)
    assert scores.max() <= 1.0 and scores.min() >= 0.0


def test_fusion_default_is_adaptive_and_fixed_weight_comes_from_the_fusion():
    assert Fusion().method == "adaptive"
    rows, scores = fuse(np.array([1]), np.array([0.4, 0.0]), np.array([2]), np.array([0.0, 0.8]),
                        Fusion("convex", dense_weight=0.25))
    assert rows.tolist() == [2, 1] and scores == pytest.approx([0.6, 0.1])


def test_query_features_golden():
    idf = np.array([0.2, 0.8])
    f = query_features("how do I distil a diffusion model?", n_tokens=4, n_unknown=1, idf=idf,
                       dense_top=np.linspace(0.6, 0.4, 10), bm25_top=np.linspace(0.5, 0.25, 10),
                       overlap=0.3)
    expected = dict(zip(FEATURES, f, strict=True))
    assert expected == pytest.approx({
        "terms": math.log1p(4), "unknown": 0.25, "question": 1.0, "idf_mean": 0.5,
        "idf_max": 0.8, "bm25_top": 0.5, "bm25_gap": 0.5, "dense_top": 0.6, "dense_gap": 0.2,
        "overlap": 0.3})


def test_query_features_of_empty_sides():
    f = query_features("GradSkip", n_tokens=0, n_unknown=0, idf=np.zeros(0), dense_top=np.zeros(0),
                       bm25_top=np.zeros(0), overlap=0.0)
    assert f.tolist() == [0.0] * len(FEATURES)


@pytest.mark.parametrize(("text", "question"), [
    ("how do I distil a diffusion model into one step", True),
    ("Does RLHF make models sycophantic?", True),
    ("ways people get around chatbot safety filters", True),
    ("gaussian splatting few views", False),
    ("GradSkip local gradient", False),
])
def test_question_form(text, question):
    assert hybrid.is_question(text) is question


def test_adaptive_weight_is_bounded_and_monotone_in_its_logit():
    low, high = ADAPTIVE["low"], ADAPTIVE["high"]
    model = {**ADAPTIVE, "coef": [0.0] * len(FEATURES), "intercept": 0.0}
    assert adaptive_weight(np.zeros(len(FEATURES)), model) == pytest.approx((low + high) / 2)
    strong = {**model, "intercept": 100.0}
    weak = {**model, "intercept": -100.0}
    assert adaptive_weight(np.zeros(len(FEATURES)), strong) == pytest.approx(high)
    assert adaptive_weight(np.zeros(len(FEATURES)), weak) == pytest.approx(low)


def test_fitted_model_trusts_keywords_for_a_coined_name_and_meaning_for_a_paraphrase():
    """The shipped coefficients, on two typical feature vectors: a coined-name query that
    BM25 matches far above everything else, and a plain-language question whose words BM25
    matches weakly and evenly."""
    coined = query_features("GradSkip local gradient methods", 4, 0, np.array([1.0, 0.4, 0.3, 0.2]),
                            np.linspace(0.55, 0.45, 10), np.r_[0.8, np.linspace(0.3, 0.2, 9)], 0.1)
    plain = query_features("how can a chatbot stop making things up when it answers from documents",
                           7, 0, np.full(7, 0.25), np.linspace(0.6, 0.5, 10),
                           np.linspace(0.25, 0.2, 10), 0.0)
    assert adaptive_weight(plain) > adaptive_weight(coined)
    assert adaptive_weight(plain) >= 0.6
    assert adaptive_weight(coined) <= 0.5


def test_overlap_at():
    assert hybrid.overlap_at(np.arange(10), np.arange(5, 15)) == 0.5
    assert hybrid.overlap_at(np.arange(3), np.arange(3)) == 0.3
