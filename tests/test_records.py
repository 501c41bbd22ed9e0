import json

import pytest

from indexer.records import (
    canonical_id,
    clean_text,
    content_hash,
    match_categories,
    paper_from_dict,
    parse_date,
)


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


# ------------------------------------------------ what SQLite and BM25 could not store


@pytest.mark.parametrize("field", ["id", "title", "abstract", "url", "primary_category"])
def test_lone_surrogates_in_text_fields_are_refused(field):
    record = {"id": "x", "title": "t", field: "a\ud800b"}
    with pytest.raises(ValueError, match=f"'{field}' holds an unpaired surrogate \\\\ud800"):
        paper_from_dict(record)


@pytest.mark.parametrize("field", ["authors", "categories", "keywords"])
@pytest.mark.parametrize("value", ["a, b\udc00", ["a", "b\udc00"]])
def test_lone_surrogates_in_list_fields_are_refused(field, value):
    with pytest.raises(ValueError, match=f"'{field}' holds an unpaired surrogate"):
        paper_from_dict({"id": "x", "title": "t", field: value})


def test_paired_surrogate_escapes_are_ordinary_text():
    p = paper_from_dict(json.loads('{"id": "x", "title": "smile \\ud83d\\ude00"}'))
    assert p.title == "smile \N{GRINNING FACE}"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"upvotes": 2**63}, "'upvotes' must be a non-negative integer below 2\\^63"),
        ({"upvotes": "9" * 5000}, "'upvotes' must be a non-negative integer below 2\\^63"),
        ({"num_comments": 10**30}, "'num_comments' must be a non-negative integer below 2\\^63"),
        ({"version": 2**64}, "'version' must be like 3 or 'v3'"),
        ({"version": "v" + "9" * 40}, "'version' must be like 3 or 'v3'"),
        ({"version": 0}, "'version' must be like 3 or 'v3'"),
        ({"upvotes": "²"}, "'upvotes' must be a non-negative integer"),  # isdigit() but not int()
    ],
)
def test_integers_must_fit_in_64_bits(record, reason):
    with pytest.raises(ValueError, match=reason):
        paper_from_dict({"id": "x", "title": "t", **record})


def test_largest_storable_integers_are_kept():
    p = paper_from_dict({"id": "x", "title": "t", "upvotes": str(2**63 - 1), "version": "v7",
                         "num_comments": "007"})
    assert (p.upvotes, p.version, p.num_comments) == (2**63 - 1, 7, 7)


def test_an_absurd_arxiv_version_is_dropped_not_an_overflow():
    p = paper_from_dict({"id": "2401.00009v" + "9" * 30, "title": "t"})
    assert (p.id, p.version) == ("2401.00009", None)
    assert canonical_id("arXiv:2401.00009v" + "9" * 5000) == "2401.00009"


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\u2028"])
def test_ids_with_control_characters_are_refused(bad):
    with pytest.raises(ValueError, match=f"'id' holds the control character U\\+{ord(bad):04X}"):
        paper_from_dict({"id": f"2401{bad}00001", "title": "t"})


def test_id_whitespace_at_the_ends_is_only_stripped():
    assert paper_from_dict({"id": "\t2401.00001\n", "title": "t"}).id == "2401.00001"


def test_a_deeply_nested_bad_value_gives_a_short_reason():
    deep: list = []
    for _ in range(900):
        deep = [deep]
    with pytest.raises(ValueError, match="'upvotes' must be a non-negative integer") as caught:
        paper_from_dict({"id": "x", "title": "t", "upvotes": deep})
    assert len(str(caught.value)) < 200


# ------------------------------------------------ the one date parser


@pytest.mark.parametrize("text", ["2024-01-05", "0001-01-01", "2024-02-29"])
def test_parse_date_takes_yyyy_mm_dd(text):
    assert parse_date(text).isoformat() == text


@pytest.mark.parametrize(
    "text", ["2025-W01-1", "2025W011", "20250101", "2025-001", "2024-02-30", "2024-1-5",
             "2024-01-05T00:00", " 2024-01-05", "2024-01-05\n", "٢٠٢٤-٠١-٠٥", "", "0000-01-01"])
def test_parse_date_refuses_every_other_form(text):
    with pytest.raises(ValueError, match="not a YYYY-MM-DD date"):
        parse_date(text)


def test_record_dates_use_the_same_parser():
    assert paper_from_dict({"id": "x", "title": "t", "published": "2024-01-05 10:00"}).published \
        == "2024-01-05"
    for text in ("2025-W01-1", "20250101"):
        with pytest.raises(ValueError, match="'published' is not a YYYY-MM-DD date"):
            paper_from_dict({"id": "x", "title": "t", "published": text})


# ------------------------------------------------ categories as people type them


KNOWN = ["cs.LG", "cs.CL", "cs.CV", "q-bio.BM", "stat.ML", "math.OC"]


def test_categories_match_whatever_the_case():
    assert match_categories(["cs.cl", "CS.LG", "cs.LG"], KNOWN) == ("cs.CL", "cs.LG")


def test_an_unknown_category_names_the_closest():
    with pytest.raises(ValueError, match=r"no paper has category 'cs\.CK' \(closest: cs\.C"):
        match_categories(["cs.LG", "cs.CK"], KNOWN)
    with pytest.raises(ValueError, match=r"'hep-th' \(the index has cs\.LG, .*, \.\.\.\)"):
        match_categories(["hep-th"], KNOWN)
