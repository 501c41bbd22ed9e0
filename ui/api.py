"""The HTTP JSON API that `papersift serve` runs: search, papers, related work,
recommendations, reading lists and the index's facts over one `Engine`.

`create_app` builds it: the lifespan that opens the engine, the routes (ui/api_routes.py,
under `/v1/` and `/health`, answering in the library's own shapes: `Results.to_dict`,
`Hit.to_dict`), the guards every request passes first (ui/api_guard.py: access log, Host
check, CORS, token, body limit) and the error handlers: every error is
`{"error": "<one line>"}`, with `"field"` when one parameter is at fault.

Endpoints are plain `def`s, so Starlette runs each in its thread pool: a request's FAISS,
numpy and SQLite work, which release the GIL, overlaps other requests'; the query encoder
takes its own lock around `encode` only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from indexer import __version__
from indexer.errors import InvalidQuery, PapersiftError, UnknownPaper
from search.engine import Engine
from search.lists import ListError, ListStoreError, ReadingLists
from ui import api_guard, api_routes
from ui.api_routes import ApiError
from ui.settings import LOOPBACK_HOSTS, Settings

log = logging.getLogger("papersift.api")

MAX_BODY = 1 << 20  # bytes of a request body (1 MiB)
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager]


MAX_MESSAGE = 500  # an error echoes at most this much of what was sent (a 100 KB id)


def _error(status: int, message: str, field: str | None = None, headers=None) -> JSONResponse:
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    body = {"error": message} | ({"field": field} if field else {})
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    engine: Engine | Callable[[], Engine],
    settings: Settings,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    cors_origins: Sequence[str] = (),
    log_queries: bool = False,
    extra_mounts: Mapping[str, ASGIApp] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    extra_lifespans: Sequence[Lifespan] = (),
    mcp: bool = True,
) -> FastAPI:
    """The API as an ASGI app.

    Args:
        engine: the engine, or a function opening it (called in the lifespan, before the
            server accepts connections: `open_engine(..., warm=True)` loads and warms the
            model there).
        settings: where the reading lists are (`settings.lists`).
        token: required as `Authorization: Bearer <token>` on every route but /health;
            None: no token, and reading-list writes are refused (403).
        allowed_hosts: Host header names answered (any port); others get 400.
        cors_origins: origins a browser page may call from; none: no CORS headers.
        log_queries: put query strings in the access log.
        extra_mounts: more ASGI apps by path prefix; a Starlette app's own lifespan is run
            with ours.
        extra_routes: more routes answered exactly where they say, after ours (e.g. the
            MCP app's: `mcp.routes`, with `lambda app: mcp.router.lifespan_context(mcp)`
            in `extra_lifespans`).
        extra_lifespans: more lifespans `app -> async context manager`, entered after the
            engine is open (`app.state.engine`) and left before the server stops.
        mcp: also answer the MCP tools (ui/mcp_server.py) over streamable HTTP at /mcp,
            from the same engine.

    Everything added sits behind the same guards: Host check, CORS, token, body limit.
    """
    if mcp:
        from ui.mcp_server import http_app

        # Our HostCheck guards /mcp like every route (any port, any case); the SDK's own
        # check (name:port, case-sensitive) would refuse Hosts the rest of the API takes.
        tools = http_app(lambda: app.state.engine, settings.lists, host="0.0.0.0")
        extra_routes = [*extra_routes, *tools.routes]
        extra_lifespans = [*extra_lifespans, lambda app: tools.router.lifespan_context(tools)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if callable(engine):
            try:
                app.state.engine = await anyio.to_thread.run_sync(engine)
            except PapersiftError as e:
                app.state.startup_error = str(e)  # one line in the log (api_guard.Outer)
                raise
        async with contextlib.AsyncExitStack() as stack:
            for mounted in (extra_mounts or {}).values():
                inner = getattr(getattr(mounted, "router", None), "lifespan_context", None)
                if inner is not None:
                    await stack.enter_async_context(inner(mounted))
            for extra in extra_lifespans:
                await stack.enter_async_context(extra(app))
            yield

    app = FastAPI(title="papersift", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None,
                  description="Semantic search over a local index of research papers. "
                  "Every error is {\"error\": \"...\"} (with \"field\" when a parameter is "
                  "at fault).")
    app.state.engine = None if callable(engine) else engine
    app.state.startup_error = None
    app.state.lists = ReadingLists(settings.lists)
    app.state.token = token
    _handlers(app)
    app.include_router(api_routes.health_router)
    app.include_router(api_routes.router)
    app.router.routes.extend(extra_routes)
    for path, mounted in (extra_mounts or {}).items():
        app.mount(path, mounted)
    # added innermost first: Outer sees every request, CORS answers preflights before the token
    app.add_middleware(api_guard.BodyLimit, limit=MAX_BODY)
    if token is not None:
        app.add_middleware(api_guard.BearerToken, token=token)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(api_guard.HostCheck, allowed=allowed_hosts)
    app.add_middleware(api_guard.Outer, log_queries=log_queries)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message, e.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = [str(p) for p in first.get("loc", ())[1:]]
        if first.get("type") == "json_invalid":
            return _error(400, f"the body is not valid JSON ({first.get('ctx', {}).get('error')})")
        if not where:
            return _error(422, "the request needs a JSON body", "body")
        return _error(422, f"{'.'.join(where)}: {first.get('msg')}", where[0])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        message, path = str(e.detail), request.url.path[:200]
        if e.status_code == 404 and message == "Not Found":
            message = f"no route {path} (the routes are listed at /docs)"
        elif e.status_code == 405:
            message = f"{request.method} is not allowed on {path}"
        return _error(e.status_code, message, headers=e.headers)

    @app.exception_handler(UnknownPaper)
    async def unknown(request: Request, e: UnknownPaper) -> JSONResponse:
        return _error(404, str(e))

    @app.exception_handler(InvalidQuery)
    async def invalid_query(request: Request, e: InvalidQuery) -> JSONResponse:
        return _error(422, str(e), e.field)

    @app.exception_handler(ListError)
    async def list_error(request: Request, e: ListError) -> JSONResponse:
        # the database failing (locked, unreadable, newer) is not the request's fault
        return _error(503 if isinstance(e, ListStoreError) else 422, str(e))

    @app.exception_handler(PapersiftError)
    async def failed(request: Request, e: PapersiftError) -> JSONResponse:
        return _error(503, f"the index cannot answer: {e}")
