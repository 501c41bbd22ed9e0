"""What the HTTP API (ui/api.py) answers: the routes under `/v1/` and `/health`.

Endpoints are plain `def`s, run in Starlette's thread pool; each asks the engine for a
searcher once and answers wholly from it (one index generation). Parameters are checked
here (422 naming the parameter, `ApiError`); the library's own errors are turned into
answers by the handlers in ui/api.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from search.engine import Engine
from search.hybrid import MODES
from search.lists import ListError, ListStoreError, ReadingLists, check_name
from search.recommend import DEFAULT_METHOD, METHODS
from search.searcher import MAX_K, SORTS, Filters, Searcher
from ui.facts import index_facts

MAX_QUERY = 2_000  # characters of a search query
MAX_IDS = 1_000  # paper ids in one like / unlike / add list


class ApiError(Exception):
    """An answer other than 200: status, one-line message, the parameter at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


# ---------------------------------------------------------------- shared pieces


def _only_known_parameters(request: Request) -> None:
    """422 for a query parameter the route does not take (`?categroy=` is a typo, not a
    filter silently left out)."""
    route = request.scope.get("route")
    known = {p.alias for p in getattr(getattr(route, "dependant", None), "query_params", ())}
    for name in request.query_params:
        if name not in known:
            raise ApiError(422, f"{name}: unknown parameter (this route takes "
                           f"{', '.join(sorted(known)) or 'none'})", name)


def _searcher(request: Request) -> Searcher:
    return request.app.state.engine.searcher()


def _writable(request: Request) -> None:
    if request.app.state.token is None:
        raise ApiError(403, "reading lists are read-only here: start papersift serve with "
                       "--token-file to allow changes")


def _filters(searcher: Searcher, since: str, until: str, categories: Sequence[str] | None,
             author: str = "") -> Filters:
    """Filters from request parameters (`Searcher.filters`); 422 naming the parameter."""
    return searcher.filters(since, until, categories or (), author)


def _paper_record(paper) -> dict[str, Any]:
    record = dataclasses.asdict(paper)
    record.pop("content_hash", None)
    return record


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


Mode = Literal[MODES]
Sort = Literal[SORTS]
Method = Literal[METHODS]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"Number of results (1-{MAX_K}).")]
Since = Annotated[str, Query(description="Published on or after YYYY-MM-DD.")]
Until = Annotated[str, Query(description="Published on or before YYYY-MM-DD.")]
Category = Annotated[list[str] | None, Query(
    description="arXiv category as the index spells it (case-insensitive); repeat for any of several.")]
PaperId = Annotated[str, Path(description="Paper id: arXiv id (any version), arXiv URL or other id.")]
IdText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ListName = Annotated[str, Path(description="The reading list's name.")]


class ErrorBody(BaseModel):
    """Every answer that is not 200/201."""

    error: str = Field(description="One line saying what was wrong.")
    field: str | None = Field(default=None, description="The parameter at fault, if one is.")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "Bad JSON or a Host header that does not name the server"),
        (401, "A token is needed (Authorization: Bearer)"),
        (404, "No such paper, reading list or route"),
        (413, "Body over 1 MiB"),
        (422, "A bad parameter (named in field)"))}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendBody(_Body):
    like: list[IdText] = Field(min_length=1, max_length=MAX_IDS, description="Papers you want more of.")
    unlike: list[IdText] = Field(default=[], max_length=MAX_IDS, description="Papers you do not want.")
    k: int = Field(default=10, ge=1, le=MAX_K)
    method: Method = DEFAULT_METHOD
    since: str = ""
    until: str = ""
    category: list[str] = Field(default=[], max_length=100)
    sort: Sort = "relevance"


class NewList(_Body):
    name: str = Field(max_length=1000, description="1-80 printable characters.")


class PaperIds(_Body):
    ids: list[IdText] = Field(min_length=1, max_length=MAX_IDS)


# ---------------------------------------------------------------- routes

health_router = APIRouter()
router = APIRouter(prefix="/v1", dependencies=[Depends(_only_known_parameters)],
                   responses=ERRORS)


@health_router.get("/health", tags=["server"])
def health(request: Request) -> dict[str, Any]:
    """Whether the newest index generation is served: `ok` (false when it failed to open;
    the previous one still answers), `generation`, `papers`, `problem`. No token needed."""
    engine: Engine = request.app.state.engine
    searcher = engine.searcher()
    problem = engine.problem
    return {"ok": problem is None, "generation": searcher.index.generation.name,
            "papers": searcher.count, "problem": problem}


@router.get("/search", tags=["search"])
def search(
    request: Request,
    q: Annotated[str, Query(max_length=MAX_QUERY, description="A question, keywords or an abstract.")],
    k: K = 10,
    mode: Annotated[Mode, Query(description="hybrid (meaning and keywords), dense or bm25.")] = "hybrid",
    since: Since = "",
    until: Until = "",
    category: Category = None,
    author: Annotated[str, Query(max_length=200, description="An author's name (Li, muller, J Smith).")] = "",
    sort: Annotated[Sort, Query()] = "relevance",
    as_typed: Annotated[bool, Query(description="No spelling correction.")] = False,
    no_floor: Annotated[bool, Query(description="Also list papers below the relevance floor.")] = False,
) -> JSONResponse:
    """Papers that answer a question: `{"query", "took_ms", "corrected", "no_close_matches",
    "hits": [{"rank", "id", "score", "title", "authors", "published", "categories", "url",
    "sources"}]}`, as `papersift search --queries F --json` prints each line."""
    if not q.strip():
        raise ApiError(422, "q: empty query", "q")
    searcher = _searcher(request)
    filters = _filters(searcher, since, until, category, author)
    started = time.perf_counter()
    results = searcher.query(q, k, filters, sort, mode, correct=not as_typed, floor=not no_floor)
    return JSONResponse(results.to_dict((time.perf_counter() - started) * 1000))


@router.get("/papers/{paper_id:path}/similar", tags=["papers"])
def similar(request: Request, paper_id: PaperId, k: K = 10, since: Since = "", until: Until = "",
            category: Category = None, sort: Annotated[Sort, Query()] = "relevance") -> JSONResponse:
    """Related work of a stored paper (itself excluded): `{"paper": {"id", "title"},
    "took_ms", "hits": [...]}`."""
    searcher = _searcher(request)
    filters = _filters(searcher, since, until, category)
    started = time.perf_counter()
    source = searcher.paper(paper_id)
    hits = searcher.similar(paper_id, k, filters, sort)
    return JSONResponse({"paper": {"id": source.id, "title": source.title}, "took_ms": _ms(started),
                         "hits": [h.to_dict() for h in hits], **searcher.partial()})


@router.get("/papers/{paper_id:path}", tags=["papers"])
def paper(request: Request, paper_id: PaperId) -> JSONResponse:
    """One stored paper, abstract included: `{"id", "title", "abstract", "authors",
    "categories", "primary_category", "published", "url", "upvotes", "num_comments",
    "keywords", "version"}`."""
    return JSONResponse(_paper_record(_searcher(request).paper(paper_id)))


@router.post("/recommend", tags=["search"])
def recommend(request: Request, body: RecommendBody) -> JSONResponse:
    """More papers like the `like` ones and unlike the `unlike` ones (never those
    themselves): `{"took_ms", "hits": [...]}`."""
    searcher = _searcher(request)
    filters = _filters(searcher, body.since, body.until, body.category)
    started = time.perf_counter()
    hits = searcher.recommend(body.like, body.unlike, body.k, filters, body.sort, body.method)
    return JSONResponse({"took_ms": _ms(started), "hits": [h.to_dict() for h in hits],
                         **searcher.partial()})


@router.get("/info", tags=["server"])
def info(request: Request) -> JSONResponse:
    """The served index: papers, date range, model, generation, categories with their
    counts, build choices, map, and `problem` (a newer generation that failed to open)."""
    engine: Engine = request.app.state.engine
    searcher = engine.searcher()
    facts = index_facts(searcher.index, searcher.atlas())
    return JSONResponse({"index": str(searcher.index.root), **facts, "problem": engine.problem})


def _list_name(name: str) -> str:
    try:
        return check_name(name)
    except ListError as e:
        raise ApiError(422, str(e), "name") from None


def _existing_list(store: ReadingLists, name: str) -> str:
    name = _list_name(name)
    if name not in {rl.name for rl in store.lists()}:
        raise ApiError(404, f"no reading list named {name!r}")
    return name


@router.get("/lists", tags=["lists"])
def lists(request: Request) -> JSONResponse:
    """Every reading list: `{"lists": [{"name", "papers", "created"}]}`."""
    found = request.app.state.lists.lists()
    return JSONResponse({"lists": [{"name": rl.name, "papers": rl.count, "created": rl.created}
                                   for rl in found]})


@router.post("/lists", tags=["lists"], status_code=201, dependencies=[Depends(_writable)])
def create_list(request: Request, body: NewList) -> JSONResponse:
    """Create an empty reading list (needs the token): `{"name", "papers": 0}`; 409 when
    one of that name exists."""
    name = _list_name(body.name)
    try:
        request.app.state.lists.create(name)
    except ListStoreError:
        raise  # 503 (ui/api.py), not a name conflict
    except ListError as e:
        raise ApiError(409, str(e), "name") from None
    return JSONResponse({"name": name, "papers": 0}, status_code=201)


@router.get("/lists/{name:path}", tags=["lists"])
def list_items(request: Request, name: ListName) -> JSONResponse:
    """A list's papers as saved, oldest first: `{"name", "papers": [{"id", "title",
    "authors", "published", "added"}]}`."""
    store: ReadingLists = request.app.state.lists
    name = _existing_list(store, name)
    items = [{"id": i.paper.id, "title": i.paper.title, "authors": list(i.paper.authors),
              "published": i.paper.published, "added": i.added} for i in store.items(name)]
    return JSONResponse({"name": name, "papers": items})


@router.post("/lists/{name:path}/papers", tags=["lists"], dependencies=[Depends(_writable)])
def add_to_list(request: Request, name: ListName, body: PaperIds) -> JSONResponse:
    """Save papers of the index to a list, made if missing (needs the token): `{"name",
    "added", "present"}` (present: saved before). An unknown id saves nothing (404)."""
    name = _list_name(name)
    searcher = _searcher(request)
    found = {p.id: p for p in (searcher.paper(i) for i in body.ids)}
    added = request.app.state.lists.add(name, list(found.values()))
    return JSONResponse({"name": name, "added": added, "present": len(found) - added})


@router.delete("/lists/{name:path}/papers/{paper_id:path}", tags=["lists"],
                dependencies=[Depends(_writable)])
def remove_from_list(request: Request, name: ListName, paper_id: PaperId) -> JSONResponse:
    """Remove one paper from a list (needs the token): `{"name", "removed": 1}`; 404 when
    the list or the paper in it is missing."""
    store: ReadingLists = request.app.state.lists
    name = _existing_list(store, name)
    if not store.remove(name, [paper_id]):
        raise ApiError(404, f"paper {paper_id[:200]!r} is not in reading list {name!r}")
    return JSONResponse({"name": name, "removed": 1})
