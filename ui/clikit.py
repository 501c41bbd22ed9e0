"""Pieces shared by the command modules: consoles, option types, progress, the encoder."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from indexer.errors import PapersiftError
from ui.settings import SERVER_ADDRESS

out = Console(soft_wrap=False)
err = Console(stderr=True, soft_wrap=True)

IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder [env PAPERSIFT_INDEX].")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="sentence-transformers model: folder or hub name "
                 "[env PAPERSIFT_MODEL; default: packaged all-MiniLM-L6-v2]."),
]
KOpt = Annotated[int, typer.Option("-k", "--k", help="Number of results (1-1000).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")]
SinceOpt = Annotated[str, typer.Option("--since", help="Published on or after YYYY-MM-DD.")]
UntilOpt = Annotated[str, typer.Option("--until", help="Published on or before YYYY-MM-DD.")]
CategoryOpt = Annotated[
    list[str] | None, typer.Option("--category", help="arXiv category; repeat for any of several.")
]
AuthorOpt = Annotated[str, typer.Option("--author", help="An author's name contains this.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="hybrid (default), dense or bm25.")]
SortOpt = Annotated[str, typer.Option("--sort", help="relevance, newest or upvotes.")]
RayOpt = Annotated[
    str | None, typer.Option("--ray", metavar="ADDRESS", help="Encode on the Ray cluster at "
                             "ADDRESS (auto or host:port); reading and writing stay here.")
]
RayActorsOpt = Annotated[
    int | None, typer.Option("--ray-actors", min=1, help="Encoding actors on the cluster "
                             "[one per GPU, else one per 4 CPUs of each node].")
]


class UsageProblem(Exception):
    """A mistake in how the command was called (exit 2)."""


def check_port(port: int, host: str = SERVER_ADDRESS) -> None:
    """Refuse a port (or --host) the server cannot be bound to, before anything is started
    or built."""
    if not 1 <= port <= 65535:
        raise PapersiftError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise PapersiftError(f"--host {host!r} cannot be resolved ({e})") from None
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise PapersiftError(f"--host {host} is not an address of this machine") from None
            reason = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be used ({e.strerror})"
            raise PapersiftError(f"port {port} on {host} {reason}; "
                                 "choose another with --port") from None


def check_date(option: str, value: str) -> str:
    """A date option: '' or exactly YYYY-MM-DD (`indexer.records.parse_date`, the parser
    the app and digests share); anything else, 2025-W01-1 or 20250101 too, is a usage
    mistake."""
    from indexer.records import parse_date

    try:
        return parse_date(value).isoformat() if value else ""
    except ValueError:
        raise UsageProblem(f"{option} must be a YYYY-MM-DD date, got {value!r}") from None


def check_window(since: str, until: str) -> None:
    """--since after --until is a usage mistake: no paper could match."""
    if since and until and since > until:
        raise UsageProblem(f"--since {since} is after --until {until}: no paper can match")


def check_url(option: str, value: str) -> str:
    """A source URL: http:// or https:// with a host (and a port 1-65535 if one is given),
    as httpx will parse it; file:///etc/passwd, http://[::1 or a bare name are usage
    mistakes, refused before any request (no retry can mend them)."""
    import httpx

    from indexer.records import control_character

    try:
        url = httpx.URL(value)
        good = (url.scheme in ("http", "https") and bool(url.host)
                and (url.port is None or 0 < url.port < 65536)
                and not control_character(value) and not any(c.isspace() for c in value))
    except (httpx.InvalidURL, ValueError, TypeError):
        good = False
    if not good:
        raise UsageProblem(f"{option} must be an http:// or https:// URL with a host, "
                           f"got {value[:80]!r}")
    return value


MAX_DELAY = 3600.0


def check_delay(delay: float | None) -> float | None:
    """--delay: None (the source's own pace) or finite seconds from 0 to MAX_DELAY."""
    import math

    if delay is not None and not (math.isfinite(delay) and 0 <= delay <= MAX_DELAY):
        raise UsageProblem(f"--delay must be seconds from 0 to {MAX_DELAY:.0f}, got {delay}")
    return delay


def check_categories(searcher, filters):
    """`filters` with its categories as the index spells them (`cs.cl` is `cs.CL`).

    Raises:
        UsageProblem: a category no paper of the index has, naming the closest ones.
    """
    from dataclasses import replace

    from indexer.records import match_categories

    if not filters.categories:
        return filters
    try:
        known = match_categories(filters.categories, (c for c, _ in searcher.categories))
    except ValueError as e:
        raise UsageProblem(f"--category: {e}") from None
    return replace(filters, categories=known)


def make_encoder(model: str | None, precision: str = "float32", batch_size: int | None = None,
                 threads: int | None = None, backend: str = "auto"):
    from indexer.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, precision=precision, batch_size=batch_size,
                                      threads=threads, backend=backend)



@contextlib.contextmanager
def cluster_encoder(address: str, settings, actors: int | None = None, **options) -> Iterator:
    """The encoder of `--ray ADDRESS` (indexer/cluster.py), connected: finished blocks are
    checkpointed in the index folder and removed when the block inside succeeds (call it
    under the index's writer lock); the cluster is left on the way out either way."""
    from indexer.cluster import RayEncoder
    from indexer.store import blocks_dir

    encoder = RayEncoder(address, settings.model, blocks_dir(settings.index), actors=actors,
                         **options)
    try:
        yield encoder
        encoder.discard_checkpoints()
    finally:
        encoder.close()


def cluster_line(encoder) -> str:
    """What the cluster did, as the line after a `--ray` build or update."""
    plan, stats = encoder.plan, encoder.stats
    gpus = f", {plan.actors} GPUs" if plan.gpus else ""
    return (f"Encoded on Ray: {plan.nodes} nodes, {plan.actors} actors{gpus}; blocks of "
            f"{encoder.block} texts: {stats.encoded:,} encoded, {stats.reused:,} reused from "
            "an earlier run")


class _EncodingColumn(ProgressColumn):
    """done/total, papers/s and time left while encoding; nothing in a phase without a
    count (reading papers, loading the model, writing the index)."""

    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        speed = task.finished_speed or task.speed
        left = task.time_remaining
        return Text(f"{task.completed:,.0f}/{task.total:,.0f}  "
                    + (f"{speed:,.0f} papers/s" if speed else "-- papers/s")
                    + (f"  ETA {int(left) // 60}:{int(left) % 60:02d}" if left is not None else ""))


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)



@contextlib.contextmanager
def encode_progress() -> Iterator[tuple]:
    """A progress bar named after the phase of a build or update ("loading model",
    "encoding", ...), with papers/s and ETA while encoding.

    Yields:
        (on_progress(done, total), on_phase(name)) for `build_index` / `update_index`;
        each phase starts a fresh bar and clock, so papers/s never counts the load.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), _EncodingColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("reading papers", total=None)

        def on_phase(name: str) -> None:
            nonlocal task
            progress.remove_task(task)
            task = progress.add_task(name, total=None)
            progress.refresh()

        yield (lambda done, total: progress.update(task, completed=done, total=total)), on_phase


class ProblemPrinter:
    """Prints the first bad input lines as they are found, then how many more there were."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.seen = 0

    def __call__(self, problem) -> None:
        self.seen += 1
        if self.seen <= self.limit:
            err.print(f"{problem} (skipped)", markup=False, highlight=False)

    def summary(self) -> None:
        if self.seen > self.limit:
            err.print(f"... and {self.seen - self.limit} more bad lines")


def make_query_encoder(model: str | None):
    """The query encoder (indexer/query_encoder.py: the cached OpenVINO model, no torch)."""
    from indexer.query_encoder import query_encoder

    return query_encoder(model)


def open_searcher(settings, with_model: bool = True):
    """The searcher of the index's current generation, opened the engine's one way."""
    from search.engine import open_engine

    return open_engine(settings.index, settings.model, with_model=with_model,
                       encoder_factory=make_query_encoder).searcher()


def make_filters(since: str, until: str, category: list[str] | None, author: str):
    from search import Filters

    since, until = check_date("--since", since), check_date("--until", until)
    check_window(since, until)
    return Filters(since, until, tuple(category or ()), author)


def authors_short(authors, limit: int = 2) -> str:
    shown = ", ".join(authors[:limit])
    return shown + (f" +{len(authors) - limit} more" if len(authors) > limit else "")


def short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_notes(results) -> None:
    """What the search did, on stderr: a spelling correction taken, or no close matches."""
    if results.corrected:
        err.print(Text(f"Showing results for {short(results.query)!r} (searched instead of "
                       f"{short(results.typed)!r})"))
    if results.no_close_matches:
        f = results.floor
        err.print(Text(f"No close matches for {short(results.query)!r}: no paper reaches the relevance "
                       f"floor (cosine {f.dense:.2f} or keyword share {f.bm25:.2f}; --no-floor "
                       "lists the nearest anyway)"))


def print_hits(hits, as_json: bool, heading: str | None = None, extra: dict | None = None,
               empty: bool = False) -> None:
    if as_json:
        for hit in hits:
            print(json.dumps({**hit.to_dict(), **(extra or {})}, ensure_ascii=False))
        return
    if not hits:
        out.print("No close matches." if empty else "No results.")
        return
    from indexer.records import printable

    table = Table(title=Text(printable(heading)) if heading is not None else None,  # not markup
                  show_lines=False, expand=True, title_justify="left")
    for name, kw in (("#", {"justify": "right"}), ("score", {}), ("title", {"ratio": 3}),
                     ("authors", {"ratio": 1}), ("date", {"no_wrap": True}), ("id", {})):
        table.add_column(name, **kw)
    for hit in hits:
        p = hit.paper
        table.add_row(str(hit.rank), f"{hit.score:.3f}", Text(printable(p.title)),
                      Text(printable(authors_short(p.authors))), printable(p.published),
                      Text(printable(p.id)))
    out.print(table)
