import pytest

from search.query import classify


@pytest.mark.parametrize(
    ("text", "paper_id"),
    [
        ("2505.13738", "2505.13738"),
        (" arXiv:2505.13738v2 ", "2505.13738"),
        ("https://arxiv.org/abs/2505.13738v1", "2505.13738"),
        ("https://arxiv.org/pdf/2505.13738.pdf", "2505.13738"),
        ("hep-th/9901001", "hep-th/9901001"),
    ],
)
def test_arxiv_ids_and_urls_are_papers(text, paper_id):
    kind = classify(text)
    assert (kind.kind, kind.value) == ("paper", paper_id)


def test_questions_and_abstracts():
    assert classify("what is 2505.13738 about").kind == "text"
    assert classify("how to distil diffusion").kind == "text"
    abstract = "We study scaling laws for weight decay. " * 12
    kind = classify(abstract)
    assert kind.kind == "abstract" and kind.value == abstract.strip()
