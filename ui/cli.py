"""The `papersift` command: build, search, similar, info, ui, demo (and, in their own modules,
fetch, update, map, recommend, list, digest).

Library errors become one line on stderr: exit 2 for usage mistakes, 1 for failures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from indexer.errors import IndexNotFound, InvalidQuery, PapersiftError
from ui import cli_explore, cli_mcp, cli_serve, cli_sources
from ui.clikit import (
    AuthorOpt,
    CategoryOpt,
    IndexOpt,
    JsonOpt,
    KOpt,
    ModelOpt,
    ModeOpt,
    PortOpt,
    ProblemPrinter,
    RayActorsOpt,
    RayOpt,
    SinceOpt,
    SortOpt,
    UntilOpt,
    UsageProblem,
    check_categories,
    check_port,
    cluster_encoder,
    cluster_line,
    encode_progress,
    err,
    human_size,
    make_encoder,
    make_filters,
    open_searcher,
    out,
    print_hits,
    print_notes,
)
from ui.facts import build_line, index_facts, lexical_line, window_line
from ui.settings import BUNDLED_CORPUS, SERVER_ADDRESS, Settings, server_flags

try:  # typer >= 0.29 vendors its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="papersift: local semantic search over research papers.",
)
log = logging.getLogger("papersift")


@app.command()
def build(
    files: Annotated[list[Path], typer.Argument(help="JSONL, CSV or BEIR corpus files (.gz ok).")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Texts per forward pass [16 on CPU, 128 on GPU]")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad line.")] = False,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 where the CPU has it), float32, bfloat16")
    ] = "auto",
    index_type: Annotated[
        str | None, typer.Option("--index-type", help="auto (exact below 200k papers, IVF "
                                 "above), flat, ivf [default: as the served index, else auto]")
    ] = None,
    vectors: Annotated[
        Path | None, typer.Option("--vectors", help=".npy embeddings row-aligned with the records.")
    ] = None,
    model_name: Annotated[
        str, typer.Option("--model-name", help="The model that made --vectors (queries need it).")
    ] = "",
    float16: Annotated[
        bool | None, typer.Option("--float16/--float32", help="Store vectors in 2 bytes per "
                                  "dimension (half the memory) [default: as the served index].")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="auto (OpenVINO on CPUs where it applies, else "
                          "torch), torch, openvino")
    ] = "auto",
    with_map: Annotated[
        bool | None, typer.Option("--map/--no-map", help="Compute the map of the field "
                                  "(papersift map) [default: if the served index has one].")
    ] = None,
    with_windows: Annotated[
        bool, typer.Option("--windows/--no-windows", help="Also embed overlapping 128-token "
                           "passages of each abstract (better ranking; about twice the encoding).")
    ] = True,
    ray: RayOpt = None,
    ray_actors: RayActorsOpt = None,
) -> None:
    """Build an index from paper files (replaces the served generation atomically)."""
    from indexer.ann import INDEX_TYPES
    from indexer.build import build_index
    from indexer.encoder import resolve_model
    from indexer.store import writer_lock

    if index_type is not None and index_type not in INDEX_TYPES:
        raise UsageProblem(f"--index-type must be auto, flat or ivf, got {index_type!r}")
    if precision not in ("auto", "float32", "bfloat16"):
        raise UsageProblem(f"--precision must be auto, float32 or bfloat16, got {precision!r}")
    if backend not in ("auto", "torch", "openvino"):
        raise UsageProblem(f"--backend must be auto, torch or openvino, got {backend!r}")
    if vectors is not None and not model_name:
        raise UsageProblem("--vectors needs --model-name: the model that computed them")
    if vectors is not None and ray is not None:
        raise UsageProblem("--vectors needs no encoding: leave out --ray")
    settings = Settings.load(index, model)
    problems = ProblemPrinter()
    with contextlib.ExitStack() as stack:
        if ray is not None:  # checkpoints are removed under the lock the build holds
            stack.enter_context(writer_lock(settings.index))
            encoder = stack.enter_context(cluster_encoder(
                ray, settings, ray_actors, precision=precision, batch_size=batch_size,
                backend=backend))
        else:
            encoder = None if vectors else make_encoder(settings.model, precision, batch_size,
                                                        backend=backend)
        with encode_progress() as (on_progress, on_phase):
            report = build_index(
                files, settings.index, encoder, strict=strict, on_problem=problems,
                on_progress=on_progress, on_phase=on_phase, index_type=index_type,
                vectors_path=vectors, model_name=resolve_model(model_name)[0] if model_name else "",
                float16=float16, with_map=with_map, with_windows=with_windows,
            )
    problems.summary()
    print(_build_summary(report, settings.index))
    if ray is not None:
        print(cluster_line(encoder))


def faiss_line(info: dict) -> str:
    """How the index searches, and for an approximate one the recall its guard measured
    and with which queries (words of the papers, or noisy vectors for imported vectors
    whose model is not at hand)."""
    guard = info.get("recall_guard") or {}
    queries = (f" for {guard.get('sample')} queries of {guard.get('queries')}"
               if guard else "")
    if info.get("exact", True):
        fallback = (f"; {info['fallback_from']} reached recall@10 {info.get('ivf_recall_at_10')}"
                    f"{queries}" if info.get("fallback_from") else "")
        return f"(exact{fallback})"
    return (f"(nlist {info.get('nlist')}, nprobe {info.get('nprobe')}, "
            f"recall@10 {info.get('recall_at_10')} vs exact{queries})")


def _build_summary(report, index: Path) -> str:
    """The line a build ends with; papers/s counts the encoding alone, the model's load
    and the map are timed apart."""
    indexing = report.seconds - report.map_seconds
    parts = [f"model loaded in {report.load_seconds:.1f} s"] if report.load_seconds else []
    if report.encode_seconds:
        parts.append(f"encoded in {report.encode_seconds:.1f} s, "
                     f"{report.papers / report.encode_seconds:,.0f} papers/s")
    return (f"Indexed {report.papers:,} papers ({report.skipped:,} bad lines skipped, "
            f"{report.duplicates:,} duplicates merged) in {indexing:.1f} s"
            + (f" ({'; '.join(parts)})" if parts else "")
            + (f", map in {report.map_seconds:.1f} s" if report.map_seconds else "")
            + f"; index {human_size(report.size_bytes)} at {index}")


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="A question or keywords.")] = None,
    k: KOpt = 10,
    as_json: JsonOpt = False,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="File with one query per line.")
    ] = None,
    since: SinceOpt = "",
    until: UntilOpt = "",
    category: CategoryOpt = None,
    author: AuthorOpt = "",
    sort: SortOpt = "relevance",
    mode: ModeOpt = "hybrid",
    as_typed: Annotated[bool, typer.Option(
        "--as-typed", help="Search the words as typed: no spelling correction.")] = False,
    no_floor: Annotated[bool, typer.Option(
        "--no-floor", help="Also list papers below the relevance floor.")] = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
) -> None:
    """Rank papers by meaning for a natural-language question."""
    from search.searcher import check_k, check_mode, check_sort

    check_mode(mode)
    if (query is None) == (queries is None):
        raise UsageProblem("give either a QUERY or --queries FILE")
    check_k(k)
    check_sort(sort)
    filters = make_filters(since, until, category, author)
    if query is not None and not query.strip():
        raise InvalidQuery("empty query")
    if queries is not None:
        try:
            lines = [q.strip() for q in queries.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as e:
            raise PapersiftError(f"{queries}: cannot read queries ({e})") from None
        lines = [q for q in lines if q]
        if not lines:
            raise InvalidQuery(f"{queries}: no queries in file")
    searcher = open_searcher(Settings.load(index, model))
    filters = check_categories(searcher, filters)
    if query is not None:
        results = searcher.query(query, k, filters, sort, mode, correct=not as_typed,
                                 floor=not no_floor)
        print_notes(results)
        extra = {"corrected": results.query} if results.corrected else {}
        print_hits(results.hits, as_json, extra=extra, empty=results.no_close_matches)
        return
    for line in lines:
        started = time.perf_counter()
        results = searcher.query(line, k, filters, sort, mode, correct=not as_typed,
                                 floor=not no_floor)
        took = (time.perf_counter() - started) * 1000
        if as_json:
            print(json.dumps({**results.to_dict(took), "query": line}, ensure_ascii=False))
        else:
            print_notes(results)
            print_hits(results.hits, False, heading=f"{line}  ({took:.0f} ms)",
                       empty=results.no_close_matches)


@app.command()
def similar(
    paper: Annotated[str, typer.Argument(metavar="ID_OR_ARXIV_URL")],
    k: KOpt = 10,
    as_json: JsonOpt = False,
    since: SinceOpt = "",
    until: UntilOpt = "",
    category: CategoryOpt = None,
    author: AuthorOpt = "",
    sort: SortOpt = "relevance",
    index: IndexOpt = None,
) -> None:
    """Papers nearest to a stored paper (from its stored vector; no model needed)."""
    from search.searcher import check_k, check_sort

    check_k(k)
    check_sort(sort)
    filters = make_filters(since, until, category, author)
    searcher = open_searcher(Settings.load(index), with_model=False)
    filters = check_categories(searcher, filters)
    source = searcher.paper(paper)
    heading = None if as_json else f"Similar to {source.id}: {source.title}"
    print_hits(searcher.similar(paper, k, filters, sort), as_json, heading=heading)


@app.command()
def info(
    index: IndexOpt = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check every file's sha256.")] = False,
) -> None:
    """Describe the index: papers, model, files."""
    from indexer.store import open_index, read_atlas

    settings = Settings.load(index)
    handle = open_index(settings.index, verify=verify)
    m = handle.manifest
    facts = index_facts(handle, read_atlas(handle.generation, handle.count))
    lo, hi = facts["published"]["first"], facts["published"]["last"]
    top = ", ".join(f"{c['name']} ({c['papers']:,})" for c in facts["categories"][:8])
    lines = [
        f"index       {settings.index}",
        f"generation  {handle.generation.name} (created {m['created']}, "
        f"papersift {m['papersift_version']}, schema {m['schema_version']})",
        f"papers      {m['count']:,}" + (f", published {lo} .. {hi}" if lo else ""),
        f"model       {m['model']['name']} (weights sha256 {m['model']['fingerprint'][:16]}…)",
        f"vectors     dim {m['dim']}, {m.get('vector_dtype', 'float32')}, {m['metric']}, "
        f"{'normalised' if m['normalized'] else 'not normalised'}",
        f"faiss       {m['faiss']['type']} " + faiss_line(m["faiss"]),
        "lexical     " + lexical_line(handle),
        "windows     " + window_line(m),
        "built with  " + build_line(m),
        f"size        {human_size(facts['size_bytes'])} in {facts['files']} files"
        + (" (sha256 verified)" if verify else ""),
    ]
    if top:
        lines.append(f"categories  {top}")
    atlas = facts["map"]
    lines.append("map         " + (
        f"{atlas['topics']} topics, {atlas['method'] or '?'} layout, seed "
        f"{'?' if atlas['seed'] is None else atlas['seed']}" if atlas else "none (papersift map)"))
    print("\n".join(lines))


def _die_with_parent():
    """A preexec_fn: on Linux the child gets SIGTERM when papersift dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # papersift died before prctl took effect
            os._exit(1)

    return preexec


MIN_STREAMLIT = (1, 67)  # st.App with middleware and server.allowedHosts: checked with 1.67


def check_streamlit() -> None:
    """Refuse a Streamlit too old to serve ui/asgi.py (one line, not a failed child)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("streamlit")
    except PackageNotFoundError:
        raise PapersiftError("streamlit is not installed: pip install -e .") from None
    parts = tuple(int(x) if x.isdigit() else 0 for x in found.split(".")[:2])
    if parts < MIN_STREAMLIT:
        need = ".".join(map(str, MIN_STREAMLIT))
        raise PapersiftError(f"papersift ui needs streamlit >= {need} (found {found}): "
                             f"pip install -U 'streamlit>={need}'")


def _run_app(settings: Settings, port: int) -> int:
    check_port(port)
    check_streamlit()
    entry = Path(__file__).resolve().parent / "asgi.py"  # ui/app.py behind a Host check
    command = [sys.executable, "-m", "streamlit", "run", str(entry), *server_flags(port)]
    url = f"http://{SERVER_ADDRESS}:{port}"
    err.print(f"papersift: serving {settings.index} at {url}", highlight=False)
    proc = subprocess.Popen(command, env={**os.environ, **settings.environment()},
                            preexec_fn=_die_with_parent())

    def stop(signum, frame):  # a terminated papersift takes its server with it
        proc.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin":
        threading.Thread(target=_open_when_up, args=(url, proc), daemon=True).start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
    if code != 0:
        raise PapersiftError(f"the app server stopped with exit status {code}")
    return 0


def _open_when_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Open the user's browser once the server answers (Streamlit runs headless)."""
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
        except OSError:
            time.sleep(0.5)
            continue
        webbrowser.open(url)
        return


@app.command()
def ui(port: PortOpt = 8501, index: IndexOpt = None, model: ModelOpt = None) -> None:
    """Open the Streamlit app on 127.0.0.1."""
    raise typer.Exit(_run_app(Settings.load(index, model), port))


@app.command()
def demo(port: PortOpt = 8501, index: IndexOpt = None) -> None:
    """Build the bundled 2,000-paper corpus into the index if it is missing, then open the app."""
    from indexer.store import read_manifest

    settings = Settings.load(index)
    check_port(port)  # before a minute of building
    check_streamlit()
    try:
        read_manifest(settings.index)
    except IndexNotFound:
        if not BUNDLED_CORPUS.is_file():
            raise PapersiftError(f"{BUNDLED_CORPUS}: bundled corpus missing") from None
        err.print(f"papersift: building the bundled corpus into {settings.index} (once)")
        build(files=[BUNDLED_CORPUS], index=settings.index, model=None, with_map=True)
    raise typer.Exit(_run_app(settings, port))


@app.command("eval")
def evaluate(
    beir: Annotated[Path, typer.Option("--beir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    split: Annotated[str, typer.Option("--split", help="qrels/SPLIT.tsv")] = "test",
    mode: Annotated[list[str] | None, typer.Option("--mode", help="hybrid, dense, bm25 (repeat).")] = None,
    as_json: JsonOpt = False,
    model: ModelOpt = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Where evaluation indexes are kept.")] = None,
) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 of each retrieval mode on a BEIR dataset."""
    import platformdirs

    from search.evaluate import evaluate_beir
    from search.searcher import check_mode

    modes = mode or ["dense", "bm25", "hybrid"]
    for m in modes:
        check_mode(m)
    cache_root = cache or platformdirs.user_cache_path("papersift") / "eval"
    results = evaluate_beir(
        beir, split, modes, make_encoder(model), cache_root, make_encoder(model, "auto"),
        on_build=lambda p: err.print(f"building an index of {beir} in {p} (once)", highlight=False),
    )
    if as_json:
        for m, metrics in results.items():
            print(json.dumps({"mode": m, "split": split, **{k: round(v, 4) for k, v in metrics.items()}}))
        return
    table = Table(title=f"{beir} ({split}, {next(iter(results.values()))['queries']} queries)",
                  title_justify="left")
    for name in ("mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "p50 ms"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for m, r in results.items():
        table.add_row(m, *(f"{r[k]:.3f}" for k in ("ndcg@10", "recall@10", "recall@100", "mrr@10")),
                      f"{r['p50_ms']:.1f}")
    out.print(table)


app.command()(cli_sources.update)
app.command()(cli_mcp.mcp)
app.command()(cli_sources.repair)
app.command()(cli_serve.serve)
app.command()(cli_serve.shard)
app.add_typer(cli_sources.fetch_app, name="fetch")
app.command("map")(cli_explore.map_command)
app.command()(cli_explore.recommend)
app.command()(cli_explore.digest)
app.add_typer(cli_explore.list_app, name="list")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command, turning errors into one line and an exit code."""
    logging.basicConfig(level=logging.WARNING, format="papersift: %(message)s")
    name = "papersift"
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args, start=1):
        if _SURROGATE.search(arg):  # bytes that are not UTF-8 reach Python as surrogates
            print(f"{name}: error: argument {i} is not valid UTF-8 text", file=sys.stderr)
            return 2
    try:
        # standalone_mode=False: Click returns a command's typer.Exit code instead of
        # raising it (serve, ui and demo end that way), so keep what it returns
        returned = app(args=args, prog_name=name, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except NoArgsIsHelpError as e:
        print(e.format_message(), file=sys.stderr)
        return 2
    except (UsageError, UsageProblem, InvalidQuery) as e:
        message = e.format_message() if isinstance(e, ClickException) else str(e)
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2
    except ClickException as e:
        print(f"{name}: error: {e.format_message()}", file=sys.stderr)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except PapersiftError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a path the system refuses: too long, not a folder, no permission
        where = f"{e.filename}: " if e.filename else ""
        print(f"{name}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return returned if isinstance(returned, int) else 0


_SURROGATE = re.compile("[\ud800-\udfff]")


if __name__ == "__main__":
    sys.exit(main())
