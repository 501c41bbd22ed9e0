"""`papersift fetch arxiv|oai|hf` and `papersift update`: keep an index current."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated

import typer

from indexer.records import control_character
from ui.clikit import (
    CategoryOpt,
    IndexOpt,
    ModelOpt,
    ProblemPrinter,
    RayActorsOpt,
    RayOpt,
    UsageProblem,
    check_date,
    check_delay,
    check_url,
    cluster_encoder,
    cluster_line,
    encode_progress,
    err,
    make_encoder,
)
from ui.settings import Settings

fetch_app = typer.Typer(help="Download papers from arXiv or Hugging Face Papers to JSON Lines.",
                        no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--out", help="Output JSON Lines file (written atomically).")]
DelayOpt = Annotated[
    float | None, typer.Option("--delay", help="Seconds between requests, 0-3600 (arXiv asks for 3).")
]
FetchSince = Annotated[str, typer.Option("--since", help="Submitted on or after YYYY-MM-DD.")]
FetchUntil = Annotated[str, typer.Option("--until", help="Submitted on or before YYYY-MM-DD.")]
QueryOpt = Annotated[str, typer.Option("--query", help="Extra arXiv search_query, e.g. 'ti:diffusion'.")]
SetOpt = Annotated[str, typer.Option("--set", help="OAI-PMH set, e.g. cs, math, physics:hep-th.")]
FromOpt = Annotated[str, typer.Option("--from", help="OAI-PMH: records changed on or after YYYY-MM-DD.")]
DateOpt = Annotated[str, typer.Option("--date", help="Hugging Face daily list of YYYY-MM-DD.")]
WeekOpt = Annotated[str, typer.Option("--week", help="Hugging Face list of week YYYY-Www.")]
MonthOpt = Annotated[str, typer.Option("--month", help="Hugging Face list of month YYYY-MM.")]
ArxivUrl = Annotated[str | None, typer.Option("--arxiv-url", help="[env PAPERSIFT_ARXIV_URL]")]
OaiUrl = Annotated[str | None, typer.Option("--oai-url", help="[env PAPERSIFT_OAI_URL]")]
HfUrl = Annotated[str | None, typer.Option("--hf-url", help="[env PAPERSIFT_HF_URL]")]


SOURCES = ("arxiv", "oai", "hf")


def check_fetch(source: str, settings: Settings, delay: float | None, *,
                since_option: str = "--since", categories=(), since: str = "", until: str = "",
                query: str = "", date: str = "", week: str = "", month: str = "",
                set_spec: str = "", **_ignored) -> None:
    """Every option of a fetch from `source`, checked before any request; `since_option`
    is how the user spelled the first day (`fetch oai --from`, `update --since`).

    Raises:
        UsageProblem, InvalidQuery: the first mistake, as one line (exit 2): an unknown
            source, a URL that is not http(s) with a host, a --delay outside 0..3600, a
            date, week or month not in the calendar, --since (or --from) after --until.
    """
    from indexer.hf import period_param

    if source not in SOURCES:
        raise UsageProblem(f"--from must be arxiv, oai or hf, got {source!r}")
    check_delay(delay)
    check_url(f"--{source}-url (or PAPERSIFT_{source.upper()}_URL)",
              settings.source_url(source))
    if source == "hf":
        period_param(date, week, month)
        return
    since, until = check_date(since_option, since), check_date("--until", until)
    if since and until and since > until:
        raise UsageProblem(f"{since_option} {since} is after --until {until}: no paper can match")
    if source == "arxiv" and not (categories or since or until or query):
        raise UsageProblem("an arXiv fetch needs --category, --since/--until or --query")
    for category in categories or ():
        if not _CATEGORY.fullmatch(category):
            raise UsageProblem(f"--category {category[:40]!r} is not an arXiv category "
                               "(like cs.CL, math.AG, hep-th)")
    for name, value in (("--query", query), ("--set", set_spec)):
        if value and (bad := control_character(value)):
            raise UsageProblem(f"{name} holds the control character U+{ord(bad):04X}")


# arXiv's archive and subject class: cs.CL, q-bio.NC, hep-th, cond-mat.stat-mech
_CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z][A-Za-z-]+)?")


def _run_fetch(source: str, settings: Settings, out: Path, delay: float | None, **options) -> int:
    """Fetch from one source into `out`; returns the number of records written."""
    from indexer.arxiv import fetch_arxiv, fetch_oai
    from indexer.fetch import Polite, ResumableJsonl, make_client
    from indexer.hf import HF_INTERVAL, fetch_hf

    check_fetch(source, settings, delay, since_option="--from" if source == "oai" else "--since",
                **options)
    headers = {"Authorization": f"Bearer {settings.hf_token}"} if (
        source == "hf" and settings.hf_token) else {}
    interval = delay if delay is not None else (HF_INTERVAL if source == "hf" else 3.0)
    sink = ResumableJsonl(out)

    def on_page(count: int, total: int) -> None:
        err.print(f"fetched {count:,}" + (f" of {total:,}" if total else "") + " papers",
                  highlight=False)

    with make_client(headers=headers) as client:
        polite = Polite(client, interval=interval)
        if source == "arxiv":
            return fetch_arxiv(polite, sink, base_url=settings.source_url("arxiv"),
                               on_page=on_page, **options)
        if source == "oai":
            return fetch_oai(polite, sink, base_url=settings.source_url("oai"),
                             on_page=on_page, **options)
        return fetch_hf(polite, sink, base_url=settings.source_url("hf"), on_page=on_page, **options)


def _done(count: int, out: Path) -> None:
    print(f"Wrote {count:,} papers to {out}")


@fetch_app.command("arxiv")
def fetch_arxiv_cmd(out: OutOpt, category: CategoryOpt = None, since: FetchSince = "",
                    until: FetchUntil = "", query: QueryOpt = "",
                    page_size: Annotated[int, typer.Option("--page-size", min=1, max=2000)] = 500,
                    delay: DelayOpt = None, arxiv_url: ArxivUrl = None) -> None:
    """Papers from the arXiv API by category, date window and query; resumable."""
    settings = Settings.load(arxiv_url=arxiv_url)
    _done(_run_fetch("arxiv", settings, out, delay, categories=tuple(category or ()),
                     since=since, until=until, query=query, page_size=page_size), out)


@fetch_app.command("oai")
def fetch_oai_cmd(out: OutOpt, set_spec: SetOpt = "cs", since: FromOpt = "",
                  until: FetchUntil = "", delay: DelayOpt = None, oai_url: OaiUrl = None) -> None:
    """Bulk or incremental harvest through arXiv OAI-PMH; resumable."""
    settings = Settings.load(oai_url=oai_url)
    _done(_run_fetch("oai", settings, out, delay, set_spec=set_spec, since=since, until=until),
          out)


@fetch_app.command("hf")
def fetch_hf_cmd(out: OutOpt, date: DateOpt = "", week: WeekOpt = "", month: MonthOpt = "",
                 delay: DelayOpt = None, hf_url: HfUrl = None) -> None:
    """The Hugging Face daily papers list with upvotes, comments and keywords."""
    settings = Settings.load(hf_url=hf_url)
    _done(_run_fetch("hf", settings, out, delay, date=date, week=week, month=month), out)


def update(
    files: Annotated[list[Path] | None, typer.Argument(help="JSONL / CSV files of papers.")] = None,
    source: Annotated[str | None, typer.Option("--from", help="Fetch first: arxiv, oai or hf.")] = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    strict: Annotated[bool, typer.Option("--strict")] = False,
    category: CategoryOpt = None,
    since: FetchSince = "",
    until: FetchUntil = "",
    query: QueryOpt = "",
    set_spec: SetOpt = "cs",
    date: DateOpt = "",
    week: WeekOpt = "",
    month: MonthOpt = "",
    delay: DelayOpt = None,
    arxiv_url: ArxivUrl = None,
    oai_url: OaiUrl = None,
    hf_url: HfUrl = None,
    vectors: Annotated[Path | None, typer.Option(
        "--vectors", help="For an index of imported vectors: .npy, one row per input record.")] = None,
    ray: RayOpt = None,
    ray_actors: RayActorsOpt = None,
) -> None:
    """Add new papers and re-embed only changed ones; readers keep the old index until the switch."""
    from indexer.store import writer_lock

    if bool(files) == bool(source):
        raise UsageProblem("give either FILE... or --from arxiv|oai|hf")
    if vectors is not None and source:
        raise UsageProblem("--vectors goes with FILE..., not --from")
    if vectors is not None and ray is not None:
        raise UsageProblem("--vectors needs no encoding: leave out --ray")
    settings = Settings.load(index, model, arxiv_url=arxiv_url, oai_url=oai_url, hf_url=hf_url)
    if source:  # every fetch option is checked before the lock, the index or any request
        check_fetch(source, settings, delay, categories=category, since=since, until=until,
                    query=query, date=date, week=week, month=month, set_spec=set_spec)
    # The write lock is taken before fetching: a second run (an overlapping cron job) is
    # refused before it touches the download in progress.
    with writer_lock(settings.index), contextlib.ExitStack() as stack:
        encoder = None
        if ray is not None:  # connected before any fetch: no cluster is one line at once
            encoder = stack.enter_context(cluster_encoder(ray, settings, ray_actors,
                                                          precision="auto"))
        _update_locked(files, source, settings, strict, category, since, until, query, set_spec,
                       date, week, month, delay, vectors, encoder)
    if encoder is not None:
        print(cluster_line(encoder))


def _update_locked(files, source, settings, strict, category, since, until, query, set_spec,
                   date, week, month, delay, vectors, encoder=None) -> None:
    from indexer.errors import IndexNotFound
    from indexer.store import fetch_dir, generations, read_manifest
    from indexer.update import update_index

    try:  # refuse a damaged index before fetching anything or loading the model
        read_manifest(settings.index)
    except IndexNotFound:
        if generations(settings.index):
            raise
    fetched = None
    if source:
        options = {
            "arxiv": {"categories": tuple(category or ()), "since": since, "until": until,
                      "query": query},
            "oai": {"set_spec": set_spec, "since": since, "until": until},
            "hf": {"date": date, "week": week, "month": month},
        }.get(source)
        if options is None:
            raise UsageProblem(f"--from must be arxiv, oai or hf, got {source!r}")
        key = hashlib.sha256(json.dumps([source, options], sort_keys=True).encode()).hexdigest()
        fetched = fetch_dir(settings.index) / f"{source}-{key[:12]}.jsonl"
        count = _run_fetch(source, settings, fetched, delay, **options)
        err.print(f"fetched {count:,} papers from {source}", highlight=False)
        if count == 0:
            fetched.unlink(missing_ok=True)
            print("Nothing new to add.")
            return
        files = [fetched]
    problems = ProblemPrinter()
    if encoder is None and vectors is None:
        encoder = make_encoder(settings.model, "auto")
    with encode_progress() as (on_progress, on_phase):
        report = update_index(files, settings.index, encoder, strict=strict,
                              on_problem=problems, on_progress=on_progress, on_phase=on_phase,
                              vectors_path=vectors)
    problems.summary()
    if fetched is not None:
        fetched.unlink(missing_ok=True)
    print(f"Updated {settings.index}: {report.added:,} added, {report.changed:,} changed, "
          f"{report.refreshed:,} refreshed without re-embedding, {report.unchanged:,} unchanged, "
          f"{report.older_ignored:,} older versions ignored, {report.skipped:,} bad lines; "
          f"encoded {report.encoded:,} papers; {report.total:,} in the index "
          f"({report.seconds:.1f} s)")



def repair(index: IndexOpt = None) -> None:
    """Serve the newest sound generation again (after CURRENT was lost or damaged); nothing is deleted."""
    from indexer.store import repair as repair_index

    settings = Settings.load(index)
    gen, skipped = repair_index(settings.index)
    for bad, why in skipped:
        err.print(f"skipped {bad.name}: {why}", markup=False, highlight=False)
    print(f"{settings.index}: now serving {gen.name}")
