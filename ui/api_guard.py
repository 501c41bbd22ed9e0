"""What every request to `papersift serve` passes before an endpoint sees it.

Plain ASGI middleware, so it guards whatever is mounted into the app (the MCP endpoint
too), outermost first:

- `Outer`: one access-log line per request (method, path, status, milliseconds; the
  query string only when asked for), and a JSON 500 for anything unexpected, whose
  traceback goes to the log and never to the client.
- `HostCheck`: 400 unless the Host header names the server as it was bound, so a web
  page that re-points its own DNS name at 127.0.0.1 (DNS rebinding) cannot use it.
- (CORS, only for the origins given: Starlette's CORSMiddleware.)
- `BearerToken`: 401 without `Authorization: Bearer <token>` when a token is set, on
  every path but /health.
- `BodyLimit`: 413 for a body over the limit, by Content-Length or as it streams in.

Every refusal is `{"error": "<one line>"}`.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("papersift.api")


async def send_error(send: Send, status: int, message: str, headers: Iterable[tuple[str, str]] = ()
                     ) -> None:
    """Answer `{"error": message}` with this status (the connection closes after it)."""
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in headers)]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Outer:
    """The access log and the last resort: an exception becomes a JSON 500.

    Also turns a `papersift` startup failure (`app.state.startup_error`, set by the
    lifespan) into its one line instead of a traceback in the server's log.
    """

    def __init__(self, app: ASGIApp, log_queries: bool = False) -> None:
        self.app = app
        self.log_queries = log_queries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._quiet_startup(scope, send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:  # noqa: BLE001 (the client gets one line, the log the traceback)
            log.exception("%s %s failed", scope["method"], self._path(scope, False))
            if not status[0]:
                status[0] = 500
                await send_error(send, 500, "internal error")
        ms = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1f ms", scope["method"], self._path(scope, self.log_queries),
                 status[0], ms)

    @staticmethod
    def _path(scope: Scope, with_query: bool) -> str:
        # the path as sent (percent-encoded: no control characters reach the log)
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        return f"{path}?{query}" if with_query and query else path

    @staticmethod
    def _quiet_startup(scope: Scope, send: Send) -> Send:
        async def sending(message: Message) -> None:
            app = scope.get("app")
            error = getattr(getattr(app, "state", None), "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error:
                message = {**message, "message": f"papersift: error: {error}"}
            await send(message)

        return sending


def host_of(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """400 unless the Host header is one of `allowed` (names or addresses, any port)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(host_of(h) for h in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = _header(scope, b"host")
            if given is None or host_of(given) not in self.allowed:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                shown = "none" if given is None else repr(given[:100])
                await send_error(send, 400, f"Host header {shown} does not name this server "
                                 f"(it answers {', '.join(sorted(self.allowed))}; "
                                 "papersift serve --allowed-host adds names)")
                return
        await self.app(scope, receive, send)


class BearerToken:
    """401 unless `Authorization: Bearer <token>` carries the token (constant-time
    comparison); paths in `open_paths` need none."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = ("/health",)) -> None:
        self.app = app
        self.token = token.encode()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in self.open_paths:
            scheme, _, given = (_header(scope, b"authorization") or "").strip().partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                await send_error(send, 401, "this server needs a token: send "
                                 "Authorization: Bearer <token> (the --token-file's contents)",
                                 [("www-authenticate", "Bearer")])
                return
            if not hmac.compare_digest(given.strip().encode("latin-1"), self.token):
                await send_error(send, 401, "wrong bearer token",
                                 [("www-authenticate", 'Bearer error="invalid_token"')])
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over `limit` bytes: at once by its Content-Length, else as
    it arrives (a chunked body is read up to the limit, then refused). A body within the
    limit is read whole and handed on."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        too_large = f"request body over {self.limit:,} bytes"
        if length is not None and (not length.strip().isdigit() or int(length) > self.limit):
            await send_error(send, 413 if length.strip().isdigit() else 400,
                             too_large if length.strip().isdigit() else "bad Content-Length")
            return
        if length is None and _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                await send_error(send, 413, too_large)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = [False]

        async def replay() -> Message:
            if not replayed[0]:
                replayed[0] = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
