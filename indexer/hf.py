"""Hugging Face Papers: the daily list (`/api/daily_papers`) with upvotes and comments."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from indexer.errors import InvalidQuery
from indexer.fetch import FetchError, Polite, ResumableJsonl, Retryable, looks_like_html
from indexer.records import arxiv_abs_url, parse_date, split_version

log = logging.getLogger(__name__)

HF_DAILY_URL = "https://huggingface.co/api/daily_papers"
# 500 requests per 5 minutes per IP without a token: one every 0.6 s stays inside it.
HF_INTERVAL = 0.6
PAGE_LIMIT = 100
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_FORMS = {"date": "a YYYY-MM-DD date",
          "week": "an ISO week YYYY-Www that exists (W01 to W52, W53 in long years)",
          "month": "a YYYY-MM month (01 to 12)"}


def _real_period(key: str, value: str) -> bool:
    """Whether `value` is a day, ISO week or month of the calendar (2025-W54 is not)."""
    try:
        if key == "date":
            parse_date(value)
        elif m := (_WEEK if key == "week" else _MONTH).fullmatch(value):
            year, number = int(m[1]), int(m[2])
            if key == "week":
                dt.date.fromisocalendar(year, number, 1)
            else:
                dt.date(year, number, 1)
        else:
            return False
    except ValueError:
        return False
    return True


def period_param(date: str = "", week: str = "", month: str = "") -> dict[str, str]:
    """Exactly one of --date YYYY-MM-DD, --week YYYY-Www, --month YYYY-MM as a query param.

    Raises:
        InvalidQuery: none or several given, or one that is not in the calendar.
    """
    given = {k: v for k, v in (("date", date), ("week", week), ("month", month)) if v}
    if len(given) != 1:
        raise InvalidQuery("give exactly one of --date YYYY-MM-DD, --week YYYY-Www, "
                           "--month YYYY-MM")
    (key, value), = given.items()
    if not isinstance(value, str) or not _real_period(key, value):
        raise InvalidQuery(f"--{key} must be {_FORMS[key]}, got {str(value)[:40]!r}")
    return {key: value}


def _hf_state_ok(state: dict[str, Any]) -> bool:
    """A saved Hugging Face cursor: the next page, or -1 after the last."""
    page = state.get("page")
    return type(page) is int and page >= -1


def item_record(item: Any) -> dict[str, Any] | None:
    """A daily-papers item ({paper: {...}, numComments, ...}) or an older search item
    ({id, title, ...}) as our record; None when it has no paper id."""
    if not isinstance(item, Mapping):
        return None
    paper = item.get("paper") if isinstance(item.get("paper"), Mapping) else item
    raw_id = paper.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        return None
    paper_id, _ = split_version(raw_id)
    authors = [a.get("name") for a in paper.get("authors") or []
               if isinstance(a, Mapping) and isinstance(a.get("name"), str)]
    record: dict[str, Any] = {
        "id": paper_id,
        "title": paper.get("title") or item.get("title") or "",
        "abstract": paper.get("summary") or item.get("summary") or "",
        "authors": authors,
        "published": str(paper.get("publishedAt") or item.get("publishedAt") or "")[:10],
        "url": arxiv_abs_url(paper_id),
        "source": "hf",
    }
    for key, value in (("upvotes", paper.get("upvotes")), ("numComments", item.get("numComments")),
                       ("ai_keywords", paper.get("ai_keywords"))):
        if value is not None:
            record[key] = value
    return record


def parse_page(response: httpx.Response) -> list[Any]:
    if looks_like_html(response):
        raise Retryable("got an HTML page instead of JSON")
    try:
        data = json.loads(response.content)
    except ValueError as e:
        raise Retryable(f"damaged JSON ({e})") from None
    if isinstance(data, Mapping) and "error" in data:
        raise FetchError(f"Hugging Face API error: {data['error']}")
    if not isinstance(data, list):
        raise FetchError(f"unexpected Hugging Face answer: a JSON {type(data).__name__}, "
                         "not a list of papers")
    return data


def fetch_hf(
    polite: Polite,
    sink: ResumableJsonl,
    *,
    base_url: str = HF_DAILY_URL,
    date: str = "",
    week: str = "",
    month: str = "",
    on_page: Callable[[int, int], None] | None = None,
) -> int:
    """Every paper of a day, week or month of the daily list, page by page; resumable."""
    period = period_param(date, week, month)
    state = sink.begin({"source": "hf", "url": base_url, **period}, _hf_state_ok) or {"page": 0}
    skipped = 0
    while state["page"] >= 0:
        items = polite.get(base_url, {**period, "limit": PAGE_LIMIT, "p": state["page"]},
                           check=parse_page)
        records = [r for r in (item_record(i) for i in items) if r]
        skipped += len(items) - len(records)
        state = {"page": state["page"] + 1 if len(items) >= PAGE_LIMIT else -1}
        sink.checkpoint(records, state)
        if on_page:
            on_page(sink.count, 0)
    if skipped:
        log.warning("skipped %d Hugging Face items without a paper id", skipped)
    sink.finish()
    return sink.count
