"""What `papersift ui` serves: the Streamlit app (ui/app.py) behind a Host header check.

`streamlit run ui/asgi.py` finds the `st.App` below and serves it with uvicorn. Starlette's
TrustedHostMiddleware answers 400 to any HTTP or WebSocket request whose Host header is not
the loopback name or address the server is bound to, so a page on another site that
re-points its own DNS name at 127.0.0.1 (DNS rebinding) cannot read or drive the app.
"""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ui.settings import LOOPBACK_HOSTS

app = st.App(
    str(Path(__file__).resolve().with_name("app.py")),
    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS),
                          www_redirect=False)],
)
