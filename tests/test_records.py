import pytest

from indexer.records import canonical_id, clean_text, content_hash, paper_from_dict


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2401.00001", "2401.00001"),
        ("2401.00001v2", "2401.00001"),
        ("arXiv:2401.00001v2", "2401.00001"),
        ("https://arxiv.org/abs/2401.00001v2", "2401.00001"),
        ("http://arxiv.org/pdf/2401.00001v3.pdf", "2401.00001"),
        ("https://www.arxiv.org/abs/2401.12345/", "2401.12345"),
        ("  0704.0001 ", "0704.0001"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v1", "hep-th/9901001"),
        ("https://arxiv.org/abs/math.GT/0309136v2", "math.GT/0309136"),
        ("4983", "4983"),
        ("doc-7", "doc-7"),
    ],
)
def test_canonical_id(raw, expected):
    assert canonical_id(raw) == expected


def test_clean_text_unwraps_lines_and_collapses_space():
    assert clean_text("We study\na class of\n  problems.  ") == "We study a class of problems."


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"Erd\H{o}s and Schr\"odinger", "Erdős and Schrödinger"),
        (r"Fran{\c c}ois G\'{e}rard", "François Gérard"),
        (r"Bal\'azs", "Balázs"),
        (r"Stra{\ss}e \o{}re", "Straße øre"),
        (r"Ho\v{s}ek, Pe\~na", "Hošek, Peña"),
    ],
)
def test_clean_text_latex_accents_become_unicode(raw, expected):
    assert clean_text(raw).replace("{}", "") == expected


def test_clean_text_leaves_math_and_other_commands_alone():
    text = r"Bounds $O(\sqrt{n})$ and $\alpha\'e$ with \textbf{bold} and \cite{x}"
    assert clean_text(text) == text


def test_paper_from_dict_our_fields():
    p = paper_from_dict({
        "id": "arXiv:2401.00001v1", "title": "A  title\n", "abstract": "Line one\nline two",
        "authors": "A. One, B. Two and C. Three", "categories": "cs.CL cs.LG",
        "published": "2024-01-05T10:00:00Z", "upvotes": 3,
    })
    assert p.id == "2401.00001"
    assert p.title == "A title"
    assert p.abstract == "Line one line two"
    assert p.authors == ("A. One", "B. Two", "C. Three")
    assert p.categories == ("cs.CL", "cs.LG")
    assert p.primary_category == "cs.CL"
    assert p.published == "2024-01-05"
    assert p.url == "https://arxiv.org/abs/2401.00001"
    assert p.upvotes == 3
    assert p.text == "A title. Line one line two"
    assert p.content_hash == content_hash("A title", "Line one line two")


def test_paper_from_dict_kaggle_snapshot_line():
    p = paper_from_dict({
        "id": "0704.0001", "submitter": "Pavel Nadolsky",
        "authors": "C. Bal\\'azs, E. L. Berger, P. M. Nadolsky, C.-P. Yuan",
        "title": "Calculation of prompt diphoton production cross sections at Tevatron and\n  LHC energies",
        "abstract": "  A fully differential calculation in perturbative QCD is\npresented.\n",
        "categories": "hep-ph", "update_date": "2008-11-13", "versions": [{"version": "v1"}],
    })
    assert p.authors[0] == "C. Balázs"
    assert p.title.endswith("Tevatron and LHC energies")
    assert p.published == "2008-11-13"


def test_paper_from_dict_beir_line():
    p = paper_from_dict({"_id": "4983", "title": "Microstructural development", "text": "Alterations"})
    assert (p.id, p.abstract, p.url) == ("4983", "Alterations", "")


def test_listing_date_used_when_no_published():
    assert paper_from_dict({"id": "x", "title": "t", "listing_date": "2025-03-18"}).published == "2025-03-18"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"title": "t"}, "no id"),
        ({"id": "  ", "title": "t"}, "no id"),
        ({"id": ["x"], "title": "t"}, "'id' must be a string"),
        ({"id": "x"}, "neither title nor abstract"),
        ({"id": "x", "title": " ", "abstract": "\n"}, "neither title nor abstract"),
        ({"id": "x", "title": 5}, "'title' must be a string"),
        ({"id": "x", "title": "t", "authors": 7}, "'authors' must be a list or a string"),
        ({"id": "x", "title": "t", "authors": ["a", 3]}, "'authors' must be a list of strings"),
        ({"id": "x", "title": "t", "published": "yesterday"}, "not a YYYY-MM-DD date"),
        ({"id": "x", "title": "t", "published": "2024-13-45"}, "not a YYYY-MM-DD date"),
        ({"id": "x", "title": "t", "upvotes": -1}, "'upvotes' must be a non-negative integer"),
        ({"id": "x", "title": "t", "upvotes": True}, "'upvotes' must be a non-negative integer"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_paper_from_dict_rejects(record, reason):
    with pytest.raises(ValueError, match=reason):
        paper_from_dict(record)
