"""The app's view state and its URL form, so that any view can be shared and reloaded.

`?q=...&since=...&until=...&cat=cs.CL&cat=cs.LG&author=...&sort=newest&mode=bm25&page=2&paper=ID`
(`verbatim=1` searches the query as typed, without a spelling correction; `all=1` lists
papers below the relevance floor too; `similar=ID`
lists papers like one paper; `view=explore` the map, with `cluster=N` one
cluster; `view=lists` the reading lists, with `list=NAME` one list; `like=ID&unlike=ID` the
papers a "more like these" ranking starts from, `view=more` that ranking; without a
question the home feed lists the newest papers, `feed=trending` the most upvoted of the
last week). Values from a URL
are untrusted: anything malformed is dropped, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from indexer.records import parse_date
from search.hybrid import MODES
from search.searcher import SORTS, Filters

VIEWS = ("search", "explore", "lists", "more")
FEEDS = ("newest", "trending")
MAX_LIKED = 50
PAGE_SIZE = 20
MAX_RESULTS = 100
MAX_PAGE = MAX_RESULTS // PAGE_SIZE
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,500}$")  # any id a build accepts; no control characters


@dataclass(frozen=True)
class ViewState:
    query: str = ""
    since: str = ""
    until: str = ""
    categories: tuple[str, ...] = ()
    author: str = ""
    sort: str = "relevance"
    mode: str = "hybrid"
    page: int = 1
    paper: str = ""
    similar: str = ""
    view: str = "search"
    cluster: int = -1
    list: str = ""
    like: tuple[str, ...] = ()
    unlike: tuple[str, ...] = ()
    verbatim: bool = False  # search the query as typed, without a spelling correction
    everything: bool = False  # also list papers below the relevance floor
    feed: str = "newest"  # the home page without a question: "newest" or "trending"

    @property
    def filters(self) -> Filters:
        return Filters(self.since, self.until, self.categories, self.author)

    @property
    def date_problem(self) -> str:
        """One line when the date range can hold no paper (since after until), else ''."""
        if self.since and self.until and self.since > self.until:
            return (f"“Published since” {self.since} is after “Published until” {self.until}: "
                    "no paper can match; change one of them.")
        return ""

    def with_(self, **changes) -> ViewState:
        return replace(self, **changes)

    def toggle_like(self, paper_id: str) -> ViewState:
        """The paper into the "more like these" set (out of the unwanted one), or out of it."""
        like = tuple(x for x in self.like if x != paper_id)
        if paper_id not in self.like:
            like = (*like, paper_id)
        return replace(self, like=like, unlike=tuple(x for x in self.unlike if x != paper_id))

    def toggle_unlike(self, paper_id: str) -> ViewState:
        """The paper into the unwanted set (out of the liked one), or out of it."""
        unlike = tuple(x for x in self.unlike if x != paper_id)
        if paper_id not in self.unlike:
            unlike = (*unlike, paper_id)
        return replace(self, unlike=unlike, like=tuple(x for x in self.like if x != paper_id))

    def to_params(self) -> dict[str, str | list[str]]:
        """Non-default fields as URL query parameters."""
        params: dict[str, str | list[str]] = {}
        for key, value in (("q", self.query), ("since", self.since), ("until", self.until),
                           ("author", self.author), ("paper", self.paper),
                           ("similar", self.similar), ("list", self.list)):
            if value:
                params[key] = value
        if self.view != "search":
            params["view"] = self.view
        if self.cluster >= 0:
            params["cluster"] = str(self.cluster)
        for key, ids in (("like", self.like), ("unlike", self.unlike)):
            if ids:
                params[key] = list(ids)
        if self.categories:
            params["cat"] = list(self.categories)
        if self.sort != "relevance":
            params["sort"] = self.sort
        if self.mode != "hybrid":
            params["mode"] = self.mode
        if self.page != 1:
            params["page"] = str(self.page)
        if self.verbatim:
            params["verbatim"] = "1"
        if self.everything:
            params["all"] = "1"
        if self.feed != "newest":
            params["feed"] = self.feed
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]]) -> ViewState:
        """Parse URL parameters (each a list of values); malformed values are ignored."""

        def first(key: str) -> str:
            values = params.get(key) or []
            return " ".join(str(values[0]).split())[:2000] if values else ""

        sort, mode = first("sort"), first("mode")
        page, cluster, view = first("page"), first("cluster"), first("view")

        def ids(key: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(x for x in (params.get(key) or []) if _ID.match(x)))[:MAX_LIKED]

        like = ids("like")
        return cls(
            query=first("q"),
            since=_date(first("since")),
            until=_date(first("until")),
            categories=tuple(dict.fromkeys(
                c for c in (params.get("cat") or []) if re.fullmatch(r"[\w.\-]{1,40}", c)
            )),
            author=first("author")[:200],
            sort=sort if sort in SORTS else "relevance",
            mode=mode if mode in MODES else "hybrid",
            page=min(int(page), MAX_PAGE) if page.isdigit() and int(page) >= 1 else 1,
            paper=first("paper") if _ID.match(first("paper")) else "",
            similar=first("similar") if _ID.match(first("similar")) else "",
            view=view if view in VIEWS else "search",
            cluster=int(cluster) if cluster.isdigit() and int(cluster) < 10_000 else -1,
            list=first("list")[:80],
            like=like,
            unlike=tuple(x for x in ids("unlike") if x not in like),
            verbatim=first("verbatim") == "1",
            everything=first("all") == "1",
            feed=first("feed") if first("feed") in FEEDS else "newest",
        )


def _date(value: str) -> str:
    """YYYY-MM-DD through the parser the CLI and digests share; anything else is dropped."""
    try:
        return parse_date(value).isoformat()
    except ValueError:
        return ""


def page_count(n_results: int) -> int:
    return max(1, -(-n_results // PAGE_SIZE))
