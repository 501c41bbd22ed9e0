"""`papersift serve`: the HTTP JSON API (ui/api.py), served by uvicorn.

It binds 127.0.0.1 unless told otherwise; any other address needs a token file. The
index is checked and the port tried before anything loads; the engine opens and the
model warms up in the app's lifespan, before uvicorn reports it is running.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from ui.cli_explore import ListsOpt
from ui.clikit import IndexOpt, ModelOpt, UsageProblem, check_port, err
from ui.settings import LOOPBACK_HOSTS, SERVER_ADDRESS, Settings

MIN_TOKEN = 16  # characters
WILDCARDS = ("0.0.0.0", "::", "")
_ORIGIN = re.compile(r"^https?://[^/\s?#@]+$")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host header names a server bound to `host` answers: the loopback names for a
    loopback address; the address itself otherwise, and for a wildcard (0.0.0.0, ::) the
    loopback names and this machine's names too; plus `extra` (--allowed-host)."""
    names = [host.strip("[]")]
    if is_loopback(host) or host in WILDCARDS:
        names += LOOPBACK_HOSTS
    if host in WILDCARDS:
        names += [socket.gethostname(), socket.getfqdn()]
    return list(dict.fromkeys(n.lower() for n in [*names, *extra] if n and n not in WILDCARDS))


def read_token(path: Path) -> str:
    """The bearer token in `path`, surrounding whitespace removed.

    Raises:
        UsageProblem: an unreadable or empty file, one others may read, or a token that is
            short or not one word of printable ASCII.
    """
    try:
        st = path.stat()
        mode = st.st_mode
        if not stat.S_ISREG(mode) or st.st_size > 4096:  # /dev/zero, a FIFO, a big file
            raise UsageProblem(f"--token-file {path}: not a small regular file")
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UsageProblem(f"--token-file {path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageProblem(f"--token-file {path}: not UTF-8 text") from None
    make = f"python -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}"
    if not token:
        raise UsageProblem(f"--token-file {path} is empty; make a token with: {make}")
    if os.name == "posix" and mode & 0o077:
        raise UsageProblem(f"--token-file {path} can be read by other users: chmod 600 {path}")
    if not all(33 <= ord(c) < 127 for c in token):
        raise UsageProblem(f"--token-file {path}: the token must be one word of printable ASCII")
    if len(token) < MIN_TOKEN:
        raise UsageProblem(f"--token-file {path}: the token has {len(token)} characters, "
                           f"at least {MIN_TOKEN} are needed; make one with: {make}")
    return token


def check_origin(origin: str) -> str:
    if not _ORIGIN.match(origin):
        raise UsageProblem(f"--cors-origin must be scheme://host[:port] with no path, "
                           f"got {origin[:80]!r}")
    return origin


def log_config() -> dict:
    """uvicorn's logging, plus the API's access log (ui/api_guard.py) on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["papersift.api"] = {"handlers": ["default"], "level": "INFO",
                                          "propagate": False}
    return config


def make_server(app, host: str, port: int, log_config: dict | None = None):
    """A uvicorn server for the app; uvicorn's own access log is off (it prints query
    strings): the app logs each request itself. Port 0 picks a free one."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, lifespan="on", access_log=False, server_header=False,
        log_config=log_config, timeout_graceful_shutdown=5))


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback "
                                      "needs --token-file.")] = SERVER_ADDRESS,
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    index: IndexOpt = None,
    model: ModelOpt = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="File holding the bearer token every request but /health must "
        "send (chmod 600); reading-list changes need it.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A web origin whose pages may call the API; repeat.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Another Host name clients use to reach the server; repeat.")] = None,
    log_queries: Annotated[bool, typer.Option(
        "--log-queries", help="Put query strings (the searches) in the access log.")] = False,
    lists: ListsOpt = None,
    shards: Annotated[Path | None, typer.Option(
        "--shards", help="Serve the shards `papersift shard` wrote to this folder instead of "
        "one index (each query is scattered to every shard and the answers merged).")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="With --shards: serve each shard from an actor on this Ray cluster "
        "('auto' or HOST:PORT); without, the shards are opened in this process.")] = None,
) -> None:
    """Serve the HTTP JSON API (OpenAPI docs at /docs) on 127.0.0.1."""
    from indexer.store import read_manifest
    from search.engine import open_engine
    from ui.api import create_app

    if not is_loopback(host) and token_file is None:
        raise UsageProblem(f"--host {host} lets other machines connect: give --token-file FILE "
                           "(a bearer token) as well")
    token = read_token(token_file) if token_file is not None else None
    origins = [check_origin(o) for o in cors_origin or ()]
    check_port(port, host)
    if ray is not None and shards is None:
        raise UsageProblem("--ray serves shards: give --shards DIR (written by `papersift shard`)")
    settings = Settings.load(index, model, lists=lists)
    from ui import clikit

    if shards is not None:
        from indexer.shard import read_set
        from search.sharded import open_sharded_engine

        read_set(shards)  # an incomplete set is one line, before the model loads
        opener = functools.partial(open_sharded_engine, shards, ray, settings.model, warm=True,
                                   encoder_factory=clikit.make_query_encoder)
    else:
        read_manifest(settings.index)  # a missing index is one line, before the model loads
        opener = functools.partial(open_engine, settings.index, settings.model, warm=True,
                                   encoder_factory=clikit.make_query_encoder)
    app = create_app(opener,
                     settings, token=token, allowed_hosts=allowed_hosts_for(host, allowed_host or ()),
                     cors_origins=origins, log_queries=log_queries)
    shown = f"[{host}]" if ":" in host else host
    served = settings.index if shards is None else f"the shards in {shards}" + (
        f" on the Ray cluster at {ray}" if ray else "")
    err.print(f"papersift: serving {served} at http://{shown}:{port} (docs at /docs)"
              + ("" if token else "; read-only without --token-file"), highlight=False)
    server = make_server(app, host, port, log_config())
    try:
        server.run()
    except SystemExit as e:  # uvicorn's, when startup failed; it logged why in one line
        raise typer.Exit(1 if e.code else 0) from None
    if not server.started:
        raise typer.Exit(1)



def shard(
    shards: Annotated[int, typer.Option("--shards", min=1, max=1024,
                                        help="How many shards to cut the index into.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write shard-000, shard-001, ... into.")],
    index: IndexOpt = None,
) -> None:
    """Cut an index into N shard indexes that together answer exactly as it does
    (serve them with `papersift serve --shards OUT [--ray ADDRESS]`)."""
    import time

    from indexer.shard import write_shards
    from ui.clikit import human_size

    settings = Settings.load(index, None)
    started = time.perf_counter()

    def done(i: int, root: Path) -> None:
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        err.print(f"  {root.name}: {human_size(size)}", highlight=False)

    written = write_shards(settings.index, shards, out, on_shard=done)
    err.print(f"papersift: {len(written)} shards of {settings.index} in {out} "
              f"({time.perf_counter() - started:.1f} s); serve them with "
              f"`papersift serve --shards {out}`", highlight=False)
