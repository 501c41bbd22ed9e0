"""`papersift map`, `recommend`, `list ...` and `digest`: explore and keep up with a field."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ui.clikit import (
    CategoryOpt,
    IndexOpt,
    JsonOpt,
    KOpt,
    ModelOpt,
    SinceOpt,
    SortOpt,
    UntilOpt,
    UsageProblem,
    check_categories,
    err,
    make_filters,
    open_searcher,
    out,
    print_hits,
)
from ui.settings import Settings

list_app = typer.Typer(help="Reading lists: save papers, export BibTeX or CSV, import BibTeX.",
                       no_args_is_help=True)

ListsOpt = Annotated[
    Path | None, typer.Option("--lists", help="Reading-list database [env PAPERSIFT_LISTS].")
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The list's name.")]


def _store(lists: Path | None):
    from search.lists import ReadingLists

    return ReadingLists(Settings.load(lists=lists).lists)


# ---------------------------------------------------------------- map


def map_command(
    index: IndexOpt = None,
    method: Annotated[str, typer.Option("--method", help="auto (UMAP, PCA below 500 papers), umap, pca")
                      ] = "auto",
    clusters: Annotated[int | None, typer.Option("--clusters", min=1, max=200,
                                                  help="Number of topics [about sqrt(n/5), 2-48]")
                        ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1,
                                      help="Random seed: the same seed, the same map.")
                    ] = 42,
    show: Annotated[bool, typer.Option("--show", help="Print the stored map's clusters only.")
                    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Lay out every paper on a 2-D map and name its topic clusters (stored with the index)."""
    from indexer.atlas import map_index
    from indexer.store import open_index, read_atlas

    if method not in ("auto", "umap", "pca"):
        raise UsageProblem(f"--method must be auto, umap or pca, got {method!r}")
    settings = Settings.load(index)
    if show:
        handle = open_index(settings.index)
        atlas = read_atlas(handle.generation, handle.count)
        if atlas is None:
            raise UsageProblem(f"{settings.index} has no map yet; run `papersift map`")
    else:
        def step(text: str) -> None:
            if not as_json:
                err.print(f"papersift: {text}", highlight=False)

        _, atlas = map_index(settings.index, seed=seed, method=method, k=clusters, on_step=step)
    sizes = atlas.sizes
    if as_json:
        print(json.dumps({"info": atlas.info, "clusters": [
            {"cluster": c, "label": label, "size": sizes[c], "terms": atlas.terms[c]}
            for c, label in enumerate(atlas.labels)]}, ensure_ascii=False))
        return
    info = atlas.info
    table = Table(title=f"{len(atlas.labels)} topics of {len(atlas.clusters):,} papers "
                        f"({info.get('method', '?')} layout, seed {info.get('seed', '?')}"
                        + (f", {info['seconds']:.1f} s" if "seconds" in info else "") + ")",
                  title_justify="left", expand=True)
    table.add_column("#", justify="right")
    table.add_column("papers", justify="right")
    table.add_column("topic", ratio=1)
    for c, label in enumerate(atlas.labels):
        table.add_row(str(c + 1), f"{sizes[c]:,}", Text(label))
    out.print(table)


# ---------------------------------------------------------------- recommend


def recommend(
    like: Annotated[list[str] | None, typer.Option("--like", help="A paper you want more of; repeat.")
                    ] = None,
    unlike: Annotated[list[str] | None, typer.Option("--unlike", help="A paper you do not want; repeat.")
                      ] = None,
    from_list: Annotated[str, typer.Option("--list", help="Like every paper of this reading list.")
                         ] = "",
    method: Annotated[str, typer.Option("--method", help="rocchio (centroid, default) or svm")
                      ] = "rocchio",
    k: KOpt = 10,
    as_json: JsonOpt = False,
    since: SinceOpt = "",
    until: UntilOpt = "",
    category: CategoryOpt = None,
    sort: SortOpt = "relevance",
    index: IndexOpt = None,
    lists: ListsOpt = None,
) -> None:
    """More papers like a set of papers (and unlike others), from their stored vectors."""
    from search.searcher import check_k, check_sort

    check_k(k)
    check_sort(sort)
    filters = make_filters(since, until, category, "")
    liked = list(like or [])
    searcher = open_searcher(Settings.load(index), with_model=False)
    filters = check_categories(searcher, filters)
    if from_list:
        ids = [item.paper.id for item in _store(lists).items(from_list)]
        known = searcher.rows_of(ids)
        if not known:
            raise UsageProblem(f"reading list {from_list!r} has no papers in {searcher.index.root}")
        liked += list(known)
    if not liked:
        raise UsageProblem("give at least one --like ID (or --list NAME)")
    hits = searcher.recommend(liked, unlike or [], k, filters, sort, method)
    heading = None if as_json else f"More like {len(set(liked))} papers" + (
        f", unlike {len(set(unlike))}" if unlike else "") + f" ({method})"
    print_hits(hits, as_json, heading=heading)


# ---------------------------------------------------------------- reading lists


@list_app.command("ls")
def list_ls(lists: ListsOpt = None, as_json: JsonOpt = False) -> None:
    """Every reading list with its size."""
    found = _store(lists).lists()
    if as_json:
        for rl in found:
            print(json.dumps({"name": rl.name, "papers": rl.count, "created": rl.created},
                             ensure_ascii=False))
        return
    if not found:
        out.print("No reading lists yet: papersift list add NAME ID ...")
        return
    for rl in found:
        out.print(Text(f"{rl.name}  ({rl.count} papers, created {rl.created[:10]})"))


@list_app.command("create")
def list_create(name: NameArg, lists: ListsOpt = None) -> None:
    """Create an empty reading list."""
    print(f"Created reading list {_store(lists).create(name)!r}")


@list_app.command("delete")
def list_delete(name: NameArg, lists: ListsOpt = None) -> None:
    """Delete a reading list and what it holds."""
    n = _store(lists).delete(name)
    print(f"Deleted reading list {name!r} ({n} papers)")


@list_app.command("rename")
def list_rename(name: NameArg, new_name: Annotated[str, typer.Argument(metavar="NEW_NAME")],
                lists: ListsOpt = None) -> None:
    """Rename a reading list."""
    print(f"Renamed {name!r} to {_store(lists).rename(name, new_name)!r}")


@list_app.command("add")
def list_add(
    name: NameArg,
    papers: Annotated[list[str], typer.Argument(metavar="ID...", help="Paper ids or arXiv URLs.")],
    index: IndexOpt = None,
    lists: ListsOpt = None,
) -> None:
    """Save papers of the index to a list (made if missing)."""
    searcher = open_searcher(Settings.load(index), with_model=False)
    found = [searcher.paper(p) for p in papers]  # an unknown id stops before anything is saved
    n = _store(lists).add(name, found)
    print(f"Saved {n} new papers to {name!r} ({len(found) - n} were there already)")


@list_app.command("remove")
def list_remove(name: NameArg, papers: Annotated[list[str], typer.Argument(metavar="ID...")],
                lists: ListsOpt = None) -> None:
    """Remove papers from a list."""
    n = _store(lists).remove(name, papers)
    print(f"Removed {n} papers from {name!r}" + (f" ({len(papers) - n} were not in it)"
                                                  if n < len(papers) else ""))


@list_app.command("show")
def list_show(name: NameArg, lists: ListsOpt = None, as_json: JsonOpt = False) -> None:
    """The papers of a list."""
    items = _store(lists).items(name)
    if as_json:
        for item in items:
            p = item.paper
            print(json.dumps({"id": p.id, "title": p.title, "authors": list(p.authors),
                              "published": p.published, "added": item.added}, ensure_ascii=False))
        return
    table = Table(title=Text(f"{name} ({len(items)} papers)"), title_justify="left",
                  expand=True)
    for column, kw in (("id", {}), ("title", {"ratio": 3}), ("date", {"no_wrap": True})):
        table.add_column(column, **kw)
    for item in items:
        table.add_row(Text(item.paper.id), Text(item.paper.title), item.paper.published)
    out.print(table)


@list_app.command("export")
def list_export(
    name: NameArg,
    fmt: Annotated[str, typer.Option("--format", help="bibtex or csv")] = "bibtex",
    out_file: Annotated[Path | None, typer.Option("--out", help="File to write [stdout].")] = None,
    lists: ListsOpt = None,
) -> None:
    """Write a list as BibTeX (@misc with eprint/archivePrefix/primaryClass) or CSV."""
    from search.lists import to_bibtex, to_csv, write_export

    if fmt not in ("bibtex", "csv"):
        raise UsageProblem(f"--format must be bibtex or csv, got {fmt!r}")
    items = _store(lists).items(name)
    text = to_bibtex([i.paper for i in items]) if fmt == "bibtex" else to_csv(items)
    if out_file is None:
        sys.stdout.write(text)
        return
    write_export(out_file, text)
    err.print(Text(f"Wrote {len(items)} papers to {out_file}"), highlight=False)


@list_app.command("import")
def list_import(
    bibtex: Annotated[Path, typer.Argument(metavar="FILE.bib")],
    name: Annotated[str, typer.Option("--name", help="The list to create or extend.")],
    index: IndexOpt = None,
    lists: ListsOpt = None,
) -> None:
    """Make a list from a BibTeX file, matching entries by arXiv id, arXiv DOI or title."""
    from search.lists import ListError, import_bibtex

    try:
        text = bibtex.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ListError(f"{bibtex}: cannot read ({e})") from None
    searcher = open_searcher(Settings.load(index), with_model=False)
    report = import_bibtex(_store(lists), name, text, searcher, source=str(bibtex))
    matched = report.entries - len(report.missing)
    print(f"{bibtex}: {report.entries} entries, {matched} found in the index, {report.added} "
          f"new in {report.name!r}" + (f"; {report.unparsed} unparsable blocks skipped"
                                       if report.unparsed else ""))
    for entry in report.missing[:20]:
        err.print(Text(f"not in the index: {entry.key}: {entry.title or '(no title)'}"))
    if len(report.missing) > 20:
        err.print(f"... and {len(report.missing) - 20} more not in the index")


# ---------------------------------------------------------------- digest


def digest(
    since: Annotated[str, typer.Option("--since", help="Papers published on or after YYYY-MM-DD.")],
    from_list: Annotated[str, typer.Option("--list", help="Papers like this reading list's.")] = "",
    query: Annotated[str, typer.Option("--query", help="Papers matching this question.")] = "",
    until: UntilOpt = "",
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=50, help="Papers in the digest.")] = 20,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the .md and .html files.")
                       ] = Path("."),
    smtp: Annotated[str, typer.Option("--smtp", help="Also send it through HOST:PORT.")] = "",
    to: Annotated[str, typer.Option("--to", help="Recipient address (with --smtp).")] = "",
    sender: Annotated[str, typer.Option("--from", help="Sender address (with --smtp).")
                      ] = "papersift@localhost",
    index: IndexOpt = None,
    model: ModelOpt = None,
    lists: ListsOpt = None,
) -> None:
    """Write a Markdown and an HTML digest of new papers for a query or a reading list."""
    from search import digest as digests
    from search.lists import check_name

    # Every option is checked before anything is computed or written.
    since, until = digests.window(since, until)
    query = digests.check_line("--query", query)
    if bool(from_list) == bool(query):
        raise UsageProblem("give exactly one of --list NAME or --query TEXT")
    from_list = check_name(from_list) if from_list else ""
    if bool(smtp) != bool(to):
        raise UsageProblem("--smtp and --to go together")
    host_port = digests.parse_smtp(smtp) if smtp else None
    to = digests.check_address("--to", to) if to else ""
    sender = digests.check_address("--from", sender)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageProblem(f"--out {out_dir} is not a folder")
    title = digests.title_for(query, digests.check_line("--list", from_list))
    digests.check_targets(*digests.paths(out_dir, title, since))  # no link or FIFO there
    ids = [i.paper.id for i in _store(lists).items(from_list)] if from_list else None
    searcher = open_searcher(Settings.load(index, model), with_model=bool(query))
    made = digests.make_digest(searcher, since=since, until=until, query=query,
                               list_name=from_list, list_ids=ids, k=k)
    md, page = digests.write(made, out_dir)
    print(f"Digest of {len(made.hits)} papers ({made.since} to {made.until}): {md} and {page}")
    if host_port:
        digests.send(made, *host_port, to=to, sender=sender)
        print(f"Sent to {to} through {host_port[0]}:{host_port[1]}")
