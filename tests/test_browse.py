"""The home feed's ordering: Searcher.browse (newest, trending), has_upvotes, date_range."""

import math

import pytest

from indexer.build import build_index
from indexer.errors import InvalidQuery
from search import Filters, Searcher
from tests.conftest import write_jsonl
from tests.fakes import FakeEncoder

PAPERS = [  # id, published, upvotes, category
    ("2603.00001", "2026-03-10", 5, "cs.CL"),
    ("2603.00002", "2026-03-10", None, "cs.LG"),
    ("2603.00003", "2026-03-04", 40, "cs.CL"),
    ("2603.00004", "2026-03-03", 99, "cs.CL"),   # eight days before the newest: not trending
    ("2603.00005", "2026-03-09", 12, "cs.LG"),
    ("2603.00006", "", 70, "cs.LG"),             # no date: never trending, last in newest
]


def build(tmp_path, rows):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": pid, "title": f"paper {pid}", "abstract": "graphs and more graphs",
         "published": day, "categories": [cat], **({"upvotes": up} if up is not None else {})}
        for pid, day, up, cat in rows])
    build_index([path], tmp_path / "ix", FakeEncoder())
    return Searcher(tmp_path / "ix")


def test_newest_first_the_last_added_first_on_a_day_undated_last(tmp_path):
    s = build(tmp_path, PAPERS)
    hits = s.browse(k=10)
    assert [h.id for h in hits] == ["2603.00002", "2603.00001", "2603.00005", "2603.00003",
                                    "2603.00004", "2603.00006"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5, 6] and all(math.isnan(h.score) for h in hits)
    assert [h.id for h in s.browse(Filters(categories=("cs.CL",)), k=2)] == [
        "2603.00001", "2603.00003"]
    assert s.browse(Filters(since="2026-04-01")) == []
    assert s.date_range == ("2026-03-03", "2026-03-10")


def test_trending_is_the_last_seven_days_by_upvotes(tmp_path):
    s = build(tmp_path, PAPERS)
    assert s.has_upvotes and s.trending_since == "2026-03-04"
    hits = s.browse(k=10, order="trending")
    assert [(h.id, h.paper.upvotes) for h in hits] == [
        ("2603.00003", 40), ("2603.00005", 12), ("2603.00001", 5)]  # no-vote paper left out
    assert [h.id for h in s.browse(Filters(categories=("cs.LG",)), order="trending")] == [
        "2603.00005"]
    with pytest.raises(InvalidQuery, match="order must be one of newest, trending"):
        s.browse(order="popular")


def test_an_index_without_upvotes_or_dates(tmp_path):
    s = build(tmp_path, [(f"2603.{i:05d}", "", None, "cs.CL") for i in range(1, 4)])
    assert not s.has_upvotes
    assert s.date_range == ("", "") and s.trending_since == ""
    assert [h.id for h in s.browse()] == ["2603.00003", "2603.00002", "2603.00001"]
    assert s.browse(order="trending") == []


def test_huge_upvote_counts_and_future_dates(tmp_path):
    today = __import__("datetime").date.today()
    s = build(tmp_path, [("2603.00001", today.isoformat(), 3_000_000_000, "cs.CL"),
                         ("2603.00002", "2999-12-31", 900, "cs.CL"),  # a date from the future
                         ("2603.00003", today.isoformat(), 7, "cs.CL")])
    assert s.has_upvotes
    assert s.trending_since == (today - __import__("datetime").timedelta(days=6)).isoformat()
    assert [h.id for h in s.browse(order="trending")] == ["2603.00001", "2603.00003"]


def test_a_newest_date_near_year_one_has_no_trending_window(tmp_path):
    s = build(tmp_path, [("2603.00001", "0001-01-02", 5, "cs.CL")])
    assert s.trending_since == ""
    assert [h.id for h in s.browse(order="trending")] == ["2603.00001"]
