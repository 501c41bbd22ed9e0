"""BM25's best without scoring every paper (indexer/lexical.py `contenders`, MaxScore)
against scoring every paper (`scores` + `top_rows`): the same rows, the same scores."""

import numpy as np
import pytest

from indexer import lexical
from search.hybrid import best_first, top_rows

WORDS = [f"w{i:03d}x" for i in range(400)]  # letters around digits: one token each


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    zipf = 1 / np.arange(1, len(WORDS) + 1) ** 1.1
    zipf /= zipf.sum()

    def text(k):
        return " ".join(rng.choice(WORDS, size=k, p=zipf))

    titles = [text(rng.integers(2, 8)) for _ in range(3000)]
    abstracts = [text(rng.integers(5, 60)) for _ in range(3000)]
    return lexical.build(titles, abstracts), rng


def _full(retriever, terms, n, allowed=None, exclude=None):
    scores = lexical.scores(retriever, terms)
    if exclude is not None:
        scores[exclude] = 0.0
    rows = top_rows(scores, n, allowed)
    return rows, scores[rows]


def _pruned(retriever, terms, n, allowed=None, exclude=None):
    rows, scores = lexical.contenders(retriever, terms, n, allowed, exclude)
    best = best_first(scores, n)
    return rows[best], scores[best]


@pytest.fixture(params=["as shipped", "always pruned"])
def pruning(request, monkeypatch):
    """The shipped thresholds (narrow filters scored directly, common queries scored in
    full) and thresholds that send every query through the MaxScore pruning."""
    if request.param == "always pruned":
        monkeypatch.setattr(lexical, "SCORE_ALLOWED", 0)
        monkeypatch.setattr(lexical, "PRUNE_SHARE", 1.0)
        monkeypatch.setattr(lexical, "SEED", 64)
    return request.param


def test_the_best_n_equal_full_scoring_on_random_queries(corpus, pruning):
    retriever, rng = corpus
    checked = 0
    for _ in range(300):
        # common and rare words, repeats, and a word the index has never seen
        words = list(rng.choice(WORDS[:20], rng.integers(0, 4))) + list(
            rng.choice(WORDS, rng.integers(1, 5))) + (["neverseen"] if rng.random() < 0.2 else [])
        terms = lexical.query_terms(retriever, " ".join(words))
        n = int(rng.choice([1, 3, 10, 100, 5000]))
        allowed = np.sort(rng.choice(3000, rng.integers(0, 3000), replace=False)) if (
            rng.random() < 0.3) else None
        exclude = rng.choice(3000, 5, replace=False) if rng.random() < 0.3 else None
        want_rows, want_scores = _full(retriever, terms, n, allowed, exclude)
        got_rows, got_scores = _pruned(retriever, terms, n, allowed, exclude)
        assert got_rows.tolist() == want_rows.tolist()
        assert np.array_equal(got_scores, want_scores)  # the same float32 sums, bit for bit
        checked += len(want_rows) > 0
    assert checked > 200


def test_scores_of_given_rows_are_full_scoring_s(corpus):
    retriever, rng = corpus
    terms = lexical.query_terms(retriever, f"{WORDS[0]} {WORDS[5]} {WORDS[5]} {WORDS[300]}")
    rows = np.sort(rng.choice(3000, 400, replace=False))
    assert np.array_equal(lexical.score_rows(retriever, terms, rows),
                          lexical.scores(retriever, terms)[rows])


def test_common_words_are_looked_up_not_scanned(corpus, pruning):
    """A query of one rare word and the commonest word: only papers holding the rare word
    contend (the common word's best cannot reach the bar on its own)."""
    retriever, _ = corpus
    terms = lexical.query_terms(retriever, f"{WORDS[0]} {WORDS[350]}")
    rare = lexical._postings(retriever, terms.ids[1])[0]
    common = lexical._postings(retriever, terms.ids[0])[0]
    assert len(common) > 10 * len(rare)
    rows, _ = lexical.contenders(retriever, terms, 3)
    assert set(rows.tolist()) <= set(rare.tolist())
    assert _pruned(retriever, terms, 3)[0].tolist() == _full(retriever, terms, 3)[0].tolist()


def test_nothing_to_find(corpus):
    retriever, _ = corpus
    for query in ("", "neverseen", "the of and"):
        rows, scores = lexical.contenders(retriever, lexical.query_terms(retriever, query), 10)
        assert len(rows) == len(scores) == 0
    terms = lexical.query_terms(retriever, WORDS[1])
    assert len(lexical.contenders(retriever, terms, 10, allowed=np.zeros(0, np.int64))[0]) == 0
