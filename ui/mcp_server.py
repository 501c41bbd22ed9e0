"""The MCP server: papersift's search as read-only tools an AI assistant can call.

`create_server` builds the server (the official SDK's `MCPServer`, mcp >= 2.3) with six
tools: search_papers, get_paper, similar_papers, recommend_papers, list_reading_lists and
get_reading_list. Each tool takes typed, bounded arguments and returns a pydantic model,
published as the tool's output schema and sent as structured content. A mistake the
assistant can correct (unknown id, bad date, empty query, k out of range, unknown list)
comes back as a tool error (`is_error`) with one line saying what was wrong, never a
traceback; nothing here writes to the index or the reading lists.

`run_stdio` serves one assistant over stdin/stdout (`papersift mcp`); `http_app` is the
same server as a streamable-HTTP ASGI app for `papersift serve` to mount at /mcp.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from indexer import __version__
from indexer.errors import PapersiftError
from indexer.records import arxiv_abs_url, safe_url
from search.hybrid import MODES
from search.lists import ListError, ReadingLists
from search.searcher import SORTS, Filters

# An assistant reads every hit into its context: 100 hits with 600-character abstracts are
# about 25k tokens, so k stops there (the CLI's 1,000 is for evaluations and exports).
MAX_K = 100
MAX_QUERY = 2_000
MAX_IDS = 1_000
ABSTRACT_CHARS = 600

INSTRUCTIONS = """\
papersift searches a local index of research papers (mostly arXiv) by meaning and keywords.
Use search_papers for a question or topic, get_paper for one paper's full abstract,
similar_papers for related work of one paper, recommend_papers for more papers like a set
(and unlike another), list_reading_lists / get_reading_list for the user's saved lists.
Every paper carries its id (an arXiv id such as 2401.00001) and a URL: cite papers by them,
and never cite a paper these tools did not return."""

# ---------------------------------------------------------------- what the tools return


class PaperRecord(BaseModel):
    id: str = Field(description="The paper's id: an arXiv id (2401.00001) for arXiv papers. Cite it.")
    title: str
    authors: list[str]
    published: str = Field(description="First published, YYYY-MM-DD ('' when unknown).")
    categories: list[str] = Field(description="arXiv categories, primary first.")
    url: str = Field(description="https://arxiv.org/abs/<id> for arXiv papers, else the "
                     "record's arxiv.org or doi.org link, or ''.")
    abstract: str
    abstract_truncated: bool = Field(description="True when the abstract is cut at about "
                                     f"{ABSTRACT_CHARS} characters; get_paper gives all of it.")


class PaperHit(PaperRecord):
    rank: int = Field(description="1 for the best match (or the first by the chosen sort).")
    score: float = Field(description="0-1 on a fixed scale (cosine, BM25 share or their "
                         "weighted sum): comparable between queries, higher is closer.")
    sources: dict[str, int] = Field(description="Which retriever found the paper at which "
                                    "rank, e.g. {\"dense\": 3, \"bm25\": 1}.")


class SearchResults(BaseModel):
    query: str = Field(description="The query as given.")
    corrected: str | None = Field(description="The spelling-corrected query that was searched "
                                  "instead, or null.")
    no_close_matches: bool = Field(description="True when no paper is close to the query "
                                   "(hits is then empty): say so rather than guess.")
    took_ms: float
    hits: list[PaperHit]
    partial: bool = Field(default=False, description="True when some shards of a sharded "
                          "index did not answer: the hits come from the others; say so.")


class RelatedPapers(BaseModel):
    hits: list[PaperHit] = Field(description="Best first; the given papers themselves are left out.")


class ReadingListSummary(BaseModel):
    name: str
    created: str = Field(description="When the list was made (UTC, ISO 8601).")
    count: int = Field(description="How many papers it holds.")


class ReadingListsResult(BaseModel):
    lists: list[ReadingListSummary]


class ListedPaper(BaseModel):
    id: str
    title: str
    authors: list[str]
    published: str
    categories: list[str]
    url: str
    added: str = Field(description="When it was saved to the list (UTC, ISO 8601).")
    in_index: bool = Field(description="False when the paper has left the index (get_paper "
                           "and similar_papers then cannot use it).")


class ReadingListResult(BaseModel):
    name: str
    papers: list[ListedPaper] = Field(description="Oldest addition first.")


# ---------------------------------------------------------------- what the tools take

Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY, description=(
    "A question in plain language, keywords, a coined name, or a pasted abstract."))]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"How many papers to return (1-{MAX_K}).")]
PaperId = Annotated[str, Field(min_length=1, max_length=300, description=(
    "An arXiv id (2401.00001, arXiv:2401.00001v2), an arXiv URL, or an id a result gave."))]
PaperIds = Annotated[list[PaperId], Field(max_length=MAX_IDS)]
Since = Annotated[str, Field(max_length=10, description=(
    "Only papers published on or after this day, YYYY-MM-DD; '' for no limit."))]
Until = Annotated[str, Field(max_length=10, description=(
    "Only papers published on or before this day, YYYY-MM-DD; '' for no limit."))]
Categories = Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=50, description=(
    "Only papers in any of these arXiv categories (cs.CL, q-bio.BM; case does not matter); "
    "[] for all."))]
Author = Annotated[str, Field(max_length=200, description=(
    "Only papers with an author of this name ('Li' finds Li Wei and Wei Li); '' for any."))]
Sort = Annotated[Literal[SORTS], Field(description=(
    "relevance (best first), newest, or upvotes (Hugging Face); the last two reorder the "
    "close matches."))]
Mode = Annotated[Literal[MODES], Field(description=(
    "hybrid (meaning and keywords, best in general), dense (meaning only) or bm25 (exact "
    "keywords only)."))]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)


class _Server(MCPServer):
    """`MCPServer` whose tool errors are one line: papersift's own message for a library
    error, the field and the reason for arguments that fail the input schema."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, PapersiftError):
                raise ToolError(" ".join(str(cause).split())) from None
            if isinstance(cause, ValidationError):
                raise ToolError(_validation_line(cause)) from cause
            raise


def _validation_line(error: ValidationError) -> str:
    """Each rejected argument and why, on one line: `k: Input should be ... 100`."""
    line = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                     for e in error.errors())
    return " ".join(line.split())[:500]


def create_server(get_engine: Callable[[], Any], lists_path: str | Path) -> MCPServer:
    """The MCP server over an engine.

    Args:
        get_engine: returns the `search.engine.Engine` to answer from; each tool call asks
            it for its current searcher once, so calls follow new index generations.
        lists_path: the reading-list database (read only; a missing one has no lists).

    Returns:
        The SDK's `MCPServer`: `.run("stdio")`, or `http_app` for HTTP.
    """
    server = _Server("papersift", version=__version__, instructions=INSTRUCTIONS,
                     log_level="WARNING")
    tool = server.tool(annotations=READ_ONLY)
    lists_path = Path(lists_path)

    @tool
    def search_papers(query: Query, k: K = 10, mode: Mode = "hybrid", since: Since = "",
                      until: Until = "", categories: Categories = (), author: Author = "",
                      sort: Sort = "relevance") -> SearchResults:
        """Find papers that answer a question or match a topic, best first. Use it first
        for any literature question; filter by date, category or author inside the search.
        Typos are corrected when that clearly matches better (`corrected` says so). When
        `no_close_matches` is true the index has nothing on it: say so. Abstracts are cut at
        about 600 characters; call get_paper for the whole one. Cite papers by their id."""
        searcher = get_engine().searcher()
        filters = _filters(searcher, since, until, categories, author)
        started = time.perf_counter()
        results = searcher.query(query, k, filters, sort, mode)
        answer = results.to_dict((time.perf_counter() - started) * 1000)
        answer["hits"] = [_hit(h) for h in results.hits]
        answer.pop("missing_shards", None)
        return SearchResults(**answer)

    @tool
    def get_paper(paper_id: PaperId) -> PaperRecord:
        """One paper by its arXiv id or URL (any version), with its full abstract. Use it to
        read a paper a search returned, or one the user names."""
        return _record(get_engine().searcher().paper(paper_id), limit=None)

    @tool
    def similar_papers(paper_id: PaperId, k: K = 10, since: Since = "", until: Until = "",
                       categories: Categories = (), author: Author = "",
                       sort: Sort = "relevance") -> RelatedPapers:
        """Related work of one paper in the index: papers on the same problem, best first,
        the paper itself left out. Use it to follow a good result to its neighbours."""
        searcher = get_engine().searcher()
        filters = _filters(searcher, since, until, categories, author)
        return RelatedPapers(hits=[_hit(h) for h in searcher.similar(paper_id, k, filters, sort)])

    @tool
    def recommend_papers(like: Annotated[PaperIds, Field(min_length=1, description=(
                             "Ids of papers the user likes (at least one)."))],
                         unlike: Annotated[PaperIds, Field(description=(
                             "Ids of papers of a kind to push down; [] for none."))] = (),
                         k: K = 10, since: Since = "", until: Until = "",
                         categories: Categories = (), author: Author = "",
                         sort: Sort = "relevance") -> RelatedPapers:
        """More papers like a set of papers and unlike another, best first; the given papers
        are left out. Use it for "more like these" (a reading list's ids, several good
        results) rather than searching for each one."""
        searcher = get_engine().searcher()
        filters = _filters(searcher, since, until, categories, author)
        hits = searcher.recommend(like, unlike, k, filters, sort)
        return RelatedPapers(hits=[_hit(h) for h in hits])

    @tool
    def list_reading_lists() -> ReadingListsResult:
        """The user's reading lists (name, size, when made). Use get_reading_list to see one."""
        if not lists_path.exists():  # read only: never create the database
            return ReadingListsResult(lists=[])
        return ReadingListsResult(lists=[
            ReadingListSummary(name=r.name, created=r.created, count=r.count)
            for r in ReadingLists(lists_path).lists()])

    @tool
    def get_reading_list(name: Annotated[str, Field(min_length=1, max_length=80, description=(
            "The list's name, as list_reading_lists gives it."))]) -> ReadingListResult:
        """The papers saved in one reading list (without abstracts: get_paper gives one).
        Pass their ids to recommend_papers to find more like them."""
        if not lists_path.exists():
            raise ListError(f"no reading list named {name!r} (there are no lists yet)")
        items = ReadingLists(lists_path).items(name)
        known = get_engine().searcher().rows_of([i.paper.id for i in items])
        return ReadingListResult(name=" ".join(name.split()), papers=[
            ListedPaper(id=i.paper.id, title=i.paper.title, authors=list(i.paper.authors),
                        published=i.paper.published, categories=list(i.paper.categories),
                        url=_url(i.paper), added=i.added, in_index=i.paper.id in known)
            for i in items])

    return server


def _filters(searcher, since: str, until: str, categories, author: str) -> Filters:
    """Filters checked as the API checks them (`Searcher.filters`)."""
    return searcher.filters(since, until, categories or (), author)


def _url(paper) -> str:
    return arxiv_abs_url(paper.id) or safe_url(paper.url)


def _record(paper, limit: int | None = ABSTRACT_CHARS) -> PaperRecord:
    """The paper, its abstract cut at `limit` characters (None: whole)."""
    abstract = paper.abstract
    cut = limit is not None and len(abstract) > limit
    if cut:  # at a word boundary
        abstract = abstract[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return PaperRecord(id=paper.id, title=paper.title, authors=list(paper.authors),
                       published=paper.published, categories=list(paper.categories),
                       url=_url(paper), abstract=abstract, abstract_truncated=cut)


def _hit(hit) -> PaperHit:
    return PaperHit(**_record(hit.paper).model_dump(), rank=hit.rank,
                    score=round(hit.score, 4), sources=dict(hit.sources))


# ---------------------------------------------------------------- transports


def run_stdio(index: str | Path, model: str | None = None, encoder: Any = None,
              lists: str | Path | None = None) -> None:
    """Serve the index over stdin/stdout until the client closes stdin (`papersift mcp`).

    The engine is opened, and its model warmed up, before the protocol starts, so a bad
    index raises here (one line from the CLI) and the first call is fast. Nothing but
    protocol reaches stdout: while the engine opens stdout points at stderr, and while
    serving the SDK does the same for anything but its own messages.

    Args:
        index: the index folder.
        model: the --model value (None: as the index was built, the packaged default).
        encoder: a query encoder to use instead of loading the model (tests).
        lists: the reading-list database (None: PAPERSIFT_LISTS or the per-user default).

    Raises:
        IndexNotFound, IndexCorrupt, ModelMismatch, PapersiftError: before serving.
    """
    from search.engine import open_engine
    from ui.settings import Settings

    with _stdout_to_stderr():
        engine = open_engine(index, model, warm=True, encoder=encoder)
    lists = Settings.load(index, model, lists=lists).lists
    create_server(lambda: engine, lists).run("stdio")


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 and `sys.stdout` at stderr meanwhile (a library printing
    while it loads a model must not write into the protocol stream)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def http_app(get_engine: Callable[[], Any], lists_path: str | Path, *, path: str = "/mcp",
             host: str = "127.0.0.1"):
    """The same server as a streamable-HTTP ASGI app (a Starlette app answering at `path`).

    Stateless and with JSON answers: every request stands alone (no session to keep, no
    server-to-client messages, which these tools never need). Requests must be addressed
    to `host` (for 127.0.0.1: 127.0.0.1 or localhost, any port), so a web page cannot
    reach it through DNS rebinding.

    The app's lifespan runs the SDK's session manager, which must be running before the
    first request. A parent app does not run a mounted app's lifespan: run it in yours,
    and add the MCP route to your app::

        mcp = http_app(lambda: engine, settings.lists)

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with mcp.router.lifespan_context(mcp):
                yield

        app = FastAPI(lifespan=lifespan)          # or Starlette(routes=..., lifespan=...)
        app.router.routes.extend(mcp.routes)      # answers POST /mcp exactly

    (`app.mount("/", mcp)` after your own routes works too; `app.mount("/mcp", ...)` would
    answer /mcp only through a redirect to /mcp/.)
    """
    server = create_server(get_engine, lists_path)
    return server.streamable_http_app(streamable_http_path=path, stateless_http=True,
                                      json_response=True, host=host)
