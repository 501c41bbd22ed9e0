"""The real packaged model on 300 bundled papers: plain-language questions find their paper."""

import numpy as np
import pytest

from indexer.store import open_index
from search import Searcher

pytestmark = pytest.mark.model

# Questions written in other words than the paper's title.
QUESTIONS = [
    ("how should weight decay and batch size change when pretraining bigger language models?",
     "2505.13738"),  # Power Lines: Scaling Laws for Weight Decay and Batch Size in LLM Pre-training
    ("neural network that forecasts the chance of rain several hours ahead", "2505.10271"),
    ("what is the best way to split documents into pieces for retrieval augmented generation",
     "2504.19754"),
    ("teaching a small model to rerank documents by distilling reasoning", "2504.03947"),
]


@pytest.fixture(scope="module")
def searcher(real_index, real_encoder):
    return Searcher(real_index, real_encoder)


@pytest.mark.parametrize(("question", "paper_id"), QUESTIONS)
def test_question_finds_its_paper_in_top_3(searcher, question, paper_id):
    ranked = [h.id for h in searcher.search(question, k=3)]
    assert paper_id in ranked, ranked


def test_similar_papers_share_the_topic(searcher):
    source = searcher.paper("2504.19754")  # chunking for RAG
    hits = searcher.similar(source.id, k=5)
    assert source.id not in [h.id for h in hits]
    text = " ".join((h.paper.title + " " + h.paper.abstract).lower() for h in hits)
    assert "retrieval" in text


def test_stored_vectors_match_a_fresh_float32_encoding(real_index, real_encoder):
    """Vectors built with bf16 autocast (where supported) agree with float32 queries."""
    from indexer.encoder import SentenceTransformerEncoder

    handle = open_index(real_index)
    rows = handle.papers.papers(range(20))
    fp32 = SentenceTransformerEncoder(precision="float32")
    fresh = fp32.encode([rows[i].text for i in range(20)])
    cosine = np.sum(fresh * np.asarray(handle.vectors[:20]), axis=1)
    assert cosine.min() > 0.999
    assert fp32.fingerprint == real_encoder.fingerprint
