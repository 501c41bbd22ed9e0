"""Hugging Face daily papers: both item shapes, paging, a changed answer shape."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from indexer.errors import InvalidQuery
from indexer.fetch import FetchError, Polite, ResumableJsonl
from indexer.hf import fetch_hf, item_record, period_param
from tests.feeds import bundled_papers, hf_items

FIXTURES = Path(__file__).parent / "fixtures"


def test_daily_item_shape():
    (item,) = json.loads((FIXTURES / "hf_daily_papers.json").read_text())
    record = item_record(item)
    assert record["id"] == "2607.21557"
    assert record["authors"] == ["Xiao Yu", "Baolin Peng"]
    assert record["upvotes"] == 12 and record["numComments"] == 1
    assert record["ai_keywords"] == ["reinforcement learning", "agents"]
    assert record["published"] == "2026-07-23"
    assert record["abstract"] == "Modern AI agents rely on elaborate..."


def test_older_search_item_shape():
    (item,) = json.loads((FIXTURES / "hf_papers_search_2024.json").read_text())
    record = item_record(item)
    assert (record["id"], record["title"]) == (
        "2409.07146", "Gated Slot Attention for Efficient Linear-Time Sequence Modeling")
    assert "upvotes" not in record


def test_items_without_id_are_skipped():
    assert item_record({"paper": {"title": "x"}}) is None
    assert item_record("not an object") is None


def test_period_validation():
    assert period_param(week="2026-W05") == {"week": "2026-W05"}
    assert period_param(week="2026-W53") == {"week": "2026-W53"}  # 2026 has 53 ISO weeks
    assert period_param(date="2024-02-29") == {"date": "2024-02-29"}
    with pytest.raises(InvalidQuery, match="exactly one of"):
        period_param(date="2026-01-01", month="2026-01")
    with pytest.raises(InvalidQuery, match="--month must be a YYYY-MM month"):
        period_param(month="2026-1")


@pytest.mark.parametrize(("key", "value"), [
    ("week", "2025-W54"), ("week", "2025-W53"), ("week", "2025-W00"), ("week", "2025-W01\n"),
    ("week", "２０２５-W01"), ("month", "2025-13"), ("month", "2025-00"), ("month", "0000-01"),
    ("date", "2025-02-30"), ("date", "2025-W01-1"), ("date", "20250101"),
])
def test_periods_must_be_in_the_calendar(key, value):
    with pytest.raises(InvalidQuery, match=f"--{key} must be"):
        period_param(**{key: value})


def run(handler, tmp_path, **period):
    polite = Polite(httpx.Client(transport=httpx.MockTransport(handler)), interval=0, backoff=0.01,
                    sleep=lambda s: None)
    out = tmp_path / "hf.jsonl"
    count = fetch_hf(polite, ResumableJsonl(out), **period)
    return count, [json.loads(line) for line in out.read_text().splitlines()]


def test_pages_until_a_short_page(tmp_path):
    items = hf_items(bundled_papers(130))
    seen = []

    def handler(request):
        q = parse_qs(urlsplit(str(request.url)).query)
        seen.append(q)
        page, limit = int(q["p"][0]), int(q["limit"][0])
        return httpx.Response(200, json=items[page * limit:(page + 1) * limit])

    count, records = run(handler, tmp_path, month="2025-05")
    assert count == 130 and [q["p"] for q in seen] == [["0"], ["1"]]
    assert seen[0]["month"] == ["2025-05"]
    assert records[3]["upvotes"] == 8 and records[3]["numComments"] == 3


def test_changed_answer_shape_is_a_clear_error(tmp_path):
    with pytest.raises(FetchError, match="unexpected Hugging Face answer: a JSON dict"):
        run(lambda r: httpx.Response(200, json={"papers": []}), tmp_path, date="2026-07-24")


def test_damaged_json_is_retried(tmp_path):
    answers = iter([httpx.Response(200, text='[{"paper": '), httpx.Response(200, json=[])])
    count, _ = run(lambda r: next(answers), tmp_path, date="2026-07-24")
    assert count == 0
