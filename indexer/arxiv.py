"""arXiv sources: the search API (`/api/query`, Atom via feedparser) and OAI-PMH.

Both write our JSON Lines records through `ResumableJsonl`, so `papersift build` or
`update` reads their output like any other file.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import feedparser
import httpx
from defusedxml import ElementTree

from indexer.fetch import FetchError, Polite, ResumableJsonl, Retryable, looks_like_html
from indexer.records import arxiv_abs_url, parse_date, split_version

log = logging.getLogger(__name__)

ARXIV_API_URL = "https://export.arxiv.org/api/query"
ARXIV_OAI_URL = "https://oaipmh.arxiv.org/oai"
_CATEGORY = re.compile(r"^[a-z][a-z\-]*(\.[A-Za-z\-]+)?$")
MAX_PAGE = 2000
MAX_PER_QUERY = 30000
ARXIV_SPACING = 3.0  # seconds between single-paper requests of one process (arXiv's rule)
_OAI = "{http://www.openarchives.org/OAI/2.0/}"
_ARXIV = "{http://arxiv.org/OAI/arXiv/}"


# ---------------------------------------------------------------- search API


@dataclass(frozen=True)
class FeedPage:
    total: int
    start: int
    records: list[dict[str, Any]]


def search_query(categories: Sequence[str], since: str, until: str, query: str) -> str:
    """An arXiv `search_query`: categories ORed, then the date window and the user's query."""
    parts = []
    if categories:
        cats = " OR ".join(f"cat:{c}" for c in categories)
        parts.append(f"({cats})" if len(categories) > 1 else cats)
    if since or until:
        lo = (since or "1991-01-01").replace("-", "") + "0000"
        hi = (until or dt.date.today().isoformat()).replace("-", "") + "2359"
        parts.append(f"submittedDate:[{lo} TO {hi}]")
    if query:
        parts.append(f"({query})")
    if not parts:
        raise FetchError("an arXiv fetch needs --category, --since/--until or --query")
    return " AND ".join(parts)


def entry_record(entry: Any) -> dict[str, Any] | None:
    """One Atom entry as our record; None for an entry without an arXiv id."""
    paper_id, version = split_version(entry.get("id", ""))
    if not paper_id or "/api/errors" in entry.get("id", ""):
        return None
    # Tags also carry MSC / ACM classes ("28A80 (Primary)"): keep arXiv categories only.
    categories = [t["term"] for t in entry.get("tags", []) if _CATEGORY.match(t.get("term") or "")]
    primary = (entry.get("arxiv_primary_category") or {}).get("term") or (
        categories[0] if categories else "")
    record = {
        "id": paper_id,
        "version": version,
        "title": entry.get("title", ""),
        "abstract": entry.get("summary", ""),
        "authors": [a["name"] for a in entry.get("authors", []) if a.get("name")],
        "categories": categories,
        "primary_category": primary,
        "published": (entry.get("published") or "")[:10],
        "updated": (entry.get("updated") or "")[:10],
        "url": arxiv_abs_url(paper_id),
    }
    for key in ("arxiv_doi", "arxiv_comment", "arxiv_journal_ref"):
        if entry.get(key):
            record[key.removeprefix("arxiv_")] = entry[key]
    return record


def parse_feed(response: httpx.Response, start: int, *, paged: bool = True) -> FeedPage:
    """Parse one API page; raise Retryable for anything but a good page of results.

    `paged`: a page of a search, where no paper before the total means a damaged page;
    False for an `id_list` answer, where an entry without an arXiv id means no such paper.
    """
    if looks_like_html(response):
        raise Retryable("got an HTML page instead of an Atom feed")
    feed = feedparser.parse(response.content)
    if feed.bozo and not feed.entries:
        raise Retryable(f"damaged Atom feed ({feed.get('bozo_exception')})")
    if feed.bozo and not isinstance(feed.get("bozo_exception"), feedparser.CharacterEncodingOverride):
        raise Retryable(f"damaged Atom feed ({feed.get('bozo_exception')})")
    entries = feed.entries
    if len(entries) == 1 and entries[0].get("title", "").strip() == "Error":
        raise Retryable(f"arXiv API error: {entries[0].get('summary', '').strip()}")
    total_text = feed.feed.get("opensearch_totalresults")
    if total_text is None or not str(total_text).strip().isdigit():
        raise Retryable("feed without opensearch:totalResults")
    total = int(total_text)
    records = [r for r in (entry_record(e) for e in entries) if r]
    if paged and not records and start < total:
        raise Retryable(f"empty page at {start} of {total} results")
    return FeedPage(total, start, records)


class NotOnArxiv(FetchError):
    """arXiv answered that it has no paper with the id asked for."""


_ONE_AT_A_TIME = threading.Lock()
_last_single = [float("-inf")]  # when the last single-paper request ended (monotonic)


def fetch_arxiv_paper(polite: Polite, paper_id: str, base_url: str = ARXIV_API_URL
                      ) -> dict[str, Any]:
    """The record of one paper, its newest version, by canonical arXiv id (`id_list`).
    Calls from any thread of the process are serialised and spaced ARXIV_SPACING apart
    (two sessions of the app pressing "Fetch and add" at once).

    Raises:
        NotOnArxiv: arXiv has no such paper (an empty answer).
        FetchError: the request failed (Throttled, Unreachable: see `Polite.get`).
    """
    with _ONE_AT_A_TIME:  # arXiv asks one request per 3 s of a whole process
        time.sleep(max(0.0, _last_single[0] + ARXIV_SPACING - time.monotonic()))
        try:
            page = polite.get(base_url, {"id_list": paper_id, "max_results": 1},
                              check=lambda r: parse_feed(r, 0, paged=False))
        finally:
            _last_single[0] = time.monotonic()
    found = [r for r in page.records if r["id"] == paper_id]
    if not found:
        raise NotOnArxiv(f"arXiv has no paper {paper_id}")
    return found[0]


def _split(window: list[str]) -> list[list[str]] | None:
    lo, hi = (dt.date.fromisoformat(d) for d in window)
    if lo >= hi:
        return None
    mid = lo + (hi - lo) // 2
    return [[lo.isoformat(), mid.isoformat()], [(mid + dt.timedelta(days=1)).isoformat(),
                                               hi.isoformat()]]


def _window_ok(window: Any) -> bool:
    """A saved date window: [YYYY-MM-DD, YYYY-MM-DD], first day not after the last."""
    if not (isinstance(window, list) and len(window) == 2
            and all(isinstance(d, str) for d in window)):
        return False
    try:
        lo, hi = (parse_date(d) for d in window)
    except ValueError:
        return False
    return lo <= hi


def _arxiv_state_ok(state: dict[str, Any]) -> bool:
    """A saved arXiv cursor: the date windows still to fetch, and where in the first."""
    pending, start = state.get("pending"), state.get("start")
    return (type(start) is int and start >= 0 and isinstance(pending, list)
            and all(_window_ok(w) for w in pending))


def fetch_arxiv(
    polite: Polite,
    sink: ResumableJsonl,
    *,
    base_url: str = ARXIV_API_URL,
    categories: Sequence[str] = (),
    since: str = "",
    until: str = "",
    query: str = "",
    page_size: int = 500,
    max_per_query: int = MAX_PER_QUERY,
    on_page: Callable[[int, int], None] | None = None,
) -> int:
    """Fetch every matching paper, oldest submission first, in date windows of at most
    `max_per_query` results. Resumes from `sink`'s cursor. Returns the records written."""
    page_size = max(1, min(page_size, MAX_PAGE))
    job = {"source": "arxiv", "url": base_url, "categories": list(categories), "since": since,
           "until": until, "query": query}
    search_query(categories, since, until, query)  # validate before any request
    dated = bool(since or until)
    first = [since or "1991-01-01", until or dt.date.today().isoformat()]
    state = sink.begin(job, _arxiv_state_ok) or {"pending": [first], "start": 0}
    while state["pending"]:
        window, start = state["pending"][0], state["start"]
        q = search_query(categories, *window, query) if dated else search_query(
            categories, "", "", query)
        params = {"search_query": q, "start": start, "max_results": page_size,
                  "sortBy": "submittedDate", "sortOrder": "ascending"}
        page = polite.get(base_url, params, check=lambda r, s=start: parse_feed(r, s))
        if start == 0 and page.total > max_per_query and dated and (halves := _split(window)):
            log.info("%s..%s has %d results; splitting the window", *window, page.total)
            state = {"pending": halves + state["pending"][1:], "start": 0}
            continue
        start += len(page.records)
        done = start >= min(page.total, max_per_query) or not page.records
        state = ({"pending": state["pending"][1:], "start": 0} if done
                 else {"pending": state["pending"], "start": start})
        sink.checkpoint(page.records, state)
        if on_page:
            on_page(sink.count, page.total)
    sink.finish()
    return sink.count


# ---------------------------------------------------------------- OAI-PMH


def _text(node, path: str) -> str:
    found = node.find(path)
    return " ".join((found.text or "").split()) if found is not None else ""


def oai_record(record) -> dict[str, Any] | None:
    """One OAI-PMH `<record>` in the arXiv metadata format as our record (None: deleted)."""
    header = record.find(f"{_OAI}header")
    if header is not None and header.get("status") == "deleted":
        return None
    meta = record.find(f"{_OAI}metadata/{_ARXIV}arXiv")
    if meta is None:
        return None
    authors = []
    for author in meta.findall(f"{_ARXIV}authors/{_ARXIV}author"):
        name = " ".join(x for x in (_text(author, f"{_ARXIV}forenames"),
                                    _text(author, f"{_ARXIV}keyname"),
                                    _text(author, f"{_ARXIV}suffix")) if x)
        if name:
            authors.append(name)
    paper_id = split_version(_text(meta, f"{_ARXIV}id"))[0]
    categories = _text(meta, f"{_ARXIV}categories").split()
    return {
        "id": paper_id,
        "title": _text(meta, f"{_ARXIV}title"),
        "abstract": _text(meta, f"{_ARXIV}abstract"),
        "authors": authors,
        "categories": categories,
        "primary_category": categories[0] if categories else "",
        "published": _text(meta, f"{_ARXIV}created"),
        "updated": _text(meta, f"{_ARXIV}updated"),
        "url": arxiv_abs_url(paper_id),
        **({"doi": d} if (d := _text(meta, f"{_ARXIV}doi")) else {}),
    }


def parse_oai(response: httpx.Response) -> tuple[list[dict[str, Any]], str | None]:
    """Records and the resumption token (None: last page) of one ListRecords answer."""
    if looks_like_html(response):
        raise Retryable("got an HTML page instead of OAI-PMH XML")
    try:
        root = ElementTree.fromstring(response.content)
    except ElementTree.ParseError as e:
        raise Retryable(f"damaged OAI-PMH XML ({e})") from None
    error = root.find(f"{_OAI}error")
    if error is not None:
        if error.get("code") == "noRecordsMatch":
            return [], None
        raise FetchError(f"OAI-PMH error {error.get('code')}: {(error.text or '').strip()}")
    listing = root.find(f"{_OAI}ListRecords")
    if listing is None:
        raise Retryable("OAI-PMH answer without ListRecords")
    records = [r for r in (oai_record(x) for x in listing.findall(f"{_OAI}record")) if r]
    token = listing.find(f"{_OAI}resumptionToken")
    token_text = (token.text or "").strip() if token is not None else ""
    return records, token_text or None


def _oai_state_ok(state: dict[str, Any]) -> bool:
    """A saved OAI-PMH cursor: the resumption token (None: none) and whether it began."""
    token = state.get("token")
    return isinstance(state.get("started"), bool) and (token is None or isinstance(token, str))


def fetch_oai(
    polite: Polite,
    sink: ResumableJsonl,
    *,
    base_url: str = ARXIV_OAI_URL,
    set_spec: str = "cs",
    since: str = "",
    until: str = "",
    on_page: Callable[[int, int], None] | None = None,
) -> int:
    """Harvest ListRecords (metadataPrefix=arXiv) following resumption tokens; resumable."""
    job = {"source": "oai", "url": base_url, "set": set_spec, "since": since, "until": until}
    state = sink.begin(job, _oai_state_ok) or {"token": None, "started": False}
    while True:
        if state["token"]:
            params = {"verb": "ListRecords", "resumptionToken": state["token"]}
        elif not state["started"]:
            params = {"verb": "ListRecords", "metadataPrefix": "arXiv", "set": set_spec}
            params.update({k: v for k, v in (("from", since), ("until", until)) if v})
        else:
            break
        records, token = polite.get(base_url, params, check=parse_oai)
        state = {"token": token, "started": True}
        sink.checkpoint(records, state)
        if on_page:
            on_page(sink.count, 0)
        if not token:
            break
    sink.finish()
    return sink.count
