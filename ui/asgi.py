"""What `papersift ui` serves: the Streamlit app (ui/app.py) behind a Host header check.

`streamlit run ui/asgi.py` finds the `st.App` below and serves it with uvicorn, after its
lifespan has opened the index and loaded the query model (`warm`). Starlette's
TrustedHostMiddleware answers 400 to any HTTP or WebSocket request whose Host header is not
the loopback name or address the server is bound to, so a page on another site that
re-points its own DNS name at 127.0.0.1 (DNS rebinding) cannot read or drive the app.
"""

import asyncio
import contextlib
import logging
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from indexer.errors import PapersiftError
from ui.settings import LOOPBACK_HOSTS, Settings

log = logging.getLogger("papersift")


@contextlib.asynccontextmanager
async def warm(app):
    """Open the index and load the query model before the server reports ready, so the
    first page answers at once instead of showing "Loading…" (the engine is shared with
    the pages through search.engine.shared_engine)."""
    from search.engine import shared_engine

    settings = Settings.load()
    try:
        await asyncio.to_thread(shared_engine, settings.index, settings.model)
    except PapersiftError as e:  # no index yet, a damaged one: the page says what to do
        log.warning("papersift: %s", e)
    yield


app = st.App(
    str(Path(__file__).resolve().with_name("app.py")),
    lifespan=warm,
    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS),
                          www_redirect=False)],
)
