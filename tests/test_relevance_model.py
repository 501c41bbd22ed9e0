"""Plain-language questions on the bundled 2,000 with the real model: the meaning side wins
when the words differ.

Whole-abstract vectors (the fixture skips windows to halve its build). Each question
shares no content word (stemmed, stopwords removed) with its paper's title or
abstract, so BM25 cannot find the paper; the default fusion must still rank it in the top
3. Turning the dense side off (a fusion that only listens to BM25, or the per-query min-max
blend used before) must lose papers, which shows the test can fail.
"""

import pytest

from indexer import lexical
from search import Searcher
from search.hybrid import Fusion

pytestmark = pytest.mark.model

QUESTIONS = [
    ("where do thunderstorm bolts strike most often across the planet, estimated by neural nets",
     "2504.19822"),  # Mjolnir: global lightning flash density
    ("stamping hidden logos into computer-made movies to prove authorship", "2505.12667"),
    ("charting vegetation dryness ahead of forest blazes with orbital imagery", "2506.20132"),
    ("spotting deadly undertow at seaside swimming spots in footage", "2504.01128"),
    ("swiveling photovoltaic modules toward the strongest sunshine automatically", "2504.10765"),
]


@pytest.fixture(scope="module")
def searcher(bundled_index, real_encoder):
    return Searcher(bundled_index, real_encoder)


def top3(searcher, question):
    return [h.id for h in searcher.search(question, k=3)]


@pytest.mark.parametrize(("question", "paper_id"), QUESTIONS)
def test_question_without_the_papers_words_finds_it_in_top_3(searcher, question, paper_id):
    paper = searcher.paper(paper_id)
    shared = (set(lexical.tokenize([question])[0])
              & set(lexical.tokenize([f"{paper.title} {paper.abstract}"])[0]))
    assert not shared, f"the question shares {shared} with its paper"
    assert paper_id in top3(searcher, question)


def test_a_fusion_that_ignores_meaning_loses_these_papers(bundled_index, real_encoder):
    keywords_only = Searcher(bundled_index, real_encoder, fusion=Fusion("convex", dense_weight=0.0))
    found = sum(pid in top3(keywords_only, q) for q, pid in QUESTIONS)
    assert found <= len(QUESTIONS) // 2
    before = Searcher(bundled_index, real_encoder, fusion=Fusion("minmax"))
    assert sum(pid in top3(before, q) for q, pid in QUESTIONS) < len(QUESTIONS)


def test_nonsense_gets_no_close_matches_and_a_typo_is_corrected(searcher):
    assert searcher.query("qwpoeiru zmxncb asdkjh", k=5).no_close_matches
    results = searcher.query("gausian spaltting from few photos", k=5)
    assert results.corrected and results.query.startswith("gaussian splatting")
    text = " ".join(h.paper.title.lower() for h in results.hits)
    assert "gaussian" in text or "3dgs" in text
