"""Author search by name: folded name parts, not substrings of the author list."""

import numpy as np
import pytest

from indexer.build import build_index
from indexer.store import PAPERS_DB, name_parts, open_index
from search import Filters, Searcher
from tests.conftest import write_jsonl
from tests.fakes import FakeEncoder

AUTHORS = [
    ["Li Wei", "Anna Schmidt"],          # 0
    ["Wei Li"],                           # 1
    ["Oliver Stone", "Elizabeth Moss"],   # 2: contain "li" as substrings only
    ["Robin Williams"],                   # 3
    ["Jürgen Müller"],                    # 4
    ["John Smith"],                       # 5
    ["J. Smith"],                         # 6
    ["Jane Doe", "Adam Smith"],           # 7: J and Smith, but not the same author
    ["Søren Kierkegaard", "Zoë Ñúñez-Łukasz"],  # 8
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("authors")
    path = write_jsonl(tmp / "a.jsonl", [
        {"id": f"2490.{i:05d}", "title": f"paper {i} on graphs", "abstract": f"graph study {i}",
         "authors": authors} for i, authors in enumerate(AUTHORS)])
    build_index([path], tmp / "idx", FakeEncoder())
    return tmp / "idx"


def test_name_parts_fold_accents_case_and_punctuation():
    assert name_parts("Jürgen Müller-Ørsted") == ["jurgen", "muller", "orsted"]
    assert name_parts("J. Smith") == ["j", "smith"]
    assert name_parts("ZOË Ñúñez") == ["zoe", "nunez"]
    assert name_parts("  ") == []


@pytest.mark.parametrize(("query", "rows"), [
    ("Li", [0, 1]),             # not Oliver, Williams, Elizabeth
    ("li", [0, 1]),
    ("Wei Li", [0, 1]),         # both orders of the same person's name
    ("muller", [4]),
    ("Müller", [4]),
    ("MÜLLER jurgen", [4]),
    ("Smith", [5, 6, 7]),
    ("J Smith", [5, 6]),        # an initial; Jane Doe + Adam Smith are two authors
    ("J. Smith", [5, 6]),
    ("John Smith", [5, 6]),     # a name stored with an initial matches a full first name
    ("Adam Smith", [7]),
    ("soren", [8]),
    ("lukasz", [8]),
    ("Nunez-Lukasz", [8]),
    ("Stone Moss", []),         # two authors of one paper are not one name
    ("nobody", []),
    ("nobody at all", []),      # initials alone never make a match
    ("J", []),
    ("%", []),
])
def test_author_rows(index, query, rows):
    handle = open_index(index)
    assert handle.papers.author_rows(query).tolist() == rows
    assert handle.papers.rows_matching(author=query).tolist() == rows


def test_author_filter_inside_search_and_with_dates(index):
    searcher = Searcher(index, FakeEncoder())
    hits = searcher.search("graph study", k=20, filters=Filters(author="Li"))
    assert sorted(h.id for h in hits) == ["2490.00000", "2490.00001"]
    assert searcher.allowed_rows(Filters(author="smith", categories=())).tolist() == [5, 6, 7]


def test_an_index_without_the_author_table_falls_back_to_substrings(index, tmp_path):
    import shutil
    import sqlite3

    copy = tmp_path / "old"
    shutil.copytree(index, copy)
    handle = open_index(copy)
    db = sqlite3.connect(handle.generation / PAPERS_DB)
    db.execute("DROP TABLE author_postings")
    db.commit()
    db.close()
    from indexer.store import PaperTable

    table = PaperTable(handle.generation / PAPERS_DB)
    assert not table.has_author_index
    assert np.array_equal(table.rows_matching(author="Li"), [0, 1, 2, 3])  # the old behaviour


@pytest.mark.parametrize(("since", "until", "message"), [
    ("2025-W01-1", "", "since: not a YYYY-MM-DD date"),
    ("", "20250101", "until: not a YYYY-MM-DD date"),
    ("2025-02-01", "2025-01-01", "since 2025-02-01 is after until 2025-01-01"),
])
def test_filters_refuse_bad_dates_for_every_caller(since, until, message):
    from indexer.errors import InvalidQuery

    with pytest.raises(InvalidQuery, match=message):
        Filters(since=since, until=until)


def test_names_in_scripts_without_initials_and_names_without_letters(tmp_path):
    from indexer.errors import InvalidQuery

    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "2491.00001", "title": "graphs", "abstract": "graphs", "authors": ["李 伟", "王芳"]},
        {"id": "2491.00002", "title": "graphs", "abstract": "graphs", "authors": ["Li Wei"]}])
    build_index([path], tmp_path / "idx", FakeEncoder())
    table = open_index(tmp_path / "idx").papers
    assert table.author_rows("李").tolist() == [0]
    assert table.author_rows("李 伟").tolist() == [0]
    assert table.author_rows("王芳").tolist() == [0]
    assert table.author_rows("Li").tolist() == [1]
    with pytest.raises(InvalidQuery, match="has no letters of a name"):
        Filters(author="...")


@pytest.mark.parametrize("query, expected", [
    ('"Wei Li"', [1]),              # not Li Wei
    ('"li wei"', [0]),              # folded, in order
    ('"Jurgen Muller"', [4]),       # accents folded
    ('"Smith"', []),                # a part alone is not a whole name
    ('"J. Smith"', [6]),            # not John Smith
    ('Wei Li', [0, 1]),             # without quotes: every part, either order
])
def test_a_quoted_author_is_exactly_that_name(index, query, expected):
    searcher = Searcher(index)
    rows = searcher.allowed_rows(Filters(author=query))
    assert rows.tolist() == expected
    hits = searcher.browse(Filters(author=query), k=10)
    assert sorted(int(h.id.split(".")[1]) for h in hits) == expected
