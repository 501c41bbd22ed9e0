"""The app's exploring pages: the map of the field, one cluster, reading lists, and
"more like these".

The map is a plotly scatter of the stored layout (indexer/atlas.py) built in
`ui/explore_map.py`: the papers passing the sidebar filters in their topics' colours, the
rest in grey, the question's best results circled and numbered; a click on a point opens
that paper.
"""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from indexer.errors import PapersiftError
from search import Filters, Hit, Searcher
from search.lists import ListError, import_bibtex, to_bibtex, to_csv
from ui import render
from ui.components import go, nav_button, reading_lists, show_results
from ui.explore_map import map_figure
from ui.state import MAX_RESULTS, ViewState

MAX_POINTS = 20_000  # drawn on the map; larger corpora show an even sample per cluster
MAP_INLINE_LIMIT = 20_000  # the app computes a missing map itself up to this many papers
HIGHLIGHT = 20


# ---------------------------------------------------------------- the map


@st.cache_resource(max_entries=8, show_spinner="Loading the map…")
def map_points(generation: str, filters: Filters, _searcher: Searcher) -> dict:
    """What the map draws for one generation and filter set (cached): `rows` in colour
    (the papers passing the filters, an even sample past MAX_POINTS) with their escaped
    hover titles and ids, `faint` rows in grey (the others, as far as the budget allows)
    and `passing`, how many papers pass the filters."""
    atlas = _searcher.atlas()
    every = np.arange(_searcher.count)
    allowed = _searcher.allowed_rows(filters) if filters.active else every
    rows = _even_sample(allowed, atlas.clusters, MAX_POINTS)
    faint = _even_sample(np.setdiff1d(every, allowed), atlas.clusters, MAX_POINTS - len(rows))
    papers = _searcher.index.papers.papers(rows.tolist())
    return {"rows": rows, "faint": faint, "passing": len(allowed),
            "hover": [html.escape(render.preview(papers[int(r)].title, 100)) for r in rows],
            "ids": [papers[int(r)].id for r in rows]}


def _even_sample(rows: np.ndarray, clusters: np.ndarray, budget: int) -> np.ndarray:
    """`rows` if they fit the budget, else the same seeded share of each cluster's rows."""
    if len(rows) <= budget:
        return rows
    if budget <= 0:
        return rows[:0]
    rng = np.random.default_rng(0)
    share = budget / len(rows)
    groups = [rows[clusters[rows] == c] for c in np.unique(clusters[rows])]
    return np.sort(np.concatenate([rng.choice(g, max(1, round(len(g) * share)), replace=False)
                                   for g in groups]))


def _open_clicked(state: ViewState) -> None:
    event = st.session_state.get("map")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        paper_id = points[0].get("customdata")
        if isinstance(paper_id, list):
            paper_id = paper_id[0] if paper_id else None
        if isinstance(paper_id, str):
            go(state.with_(paper=paper_id))


def _compute_map(searcher: Searcher) -> None:
    from indexer.atlas import map_index

    try:
        with st.spinner("Computing the map…"):
            map_index(searcher.index.root)
    except PapersiftError as e:
        st.session_state.map_error = str(e)


def explore_page(searcher: Searcher, state: ViewState) -> None:
    atlas = searcher.atlas()
    if atlas is None:
        st.subheader("Map of the field")
        st.info("This index has no map yet. It lays every paper out by meaning and names "
                "its topics; it is computed once per index and kept through updates.")
        if error := st.session_state.pop("map_error", ""):
            st.error(render.escape_md(error))
        if searcher.count <= MAP_INLINE_LIMIT:
            st.button("Compute the map now", key="compute-map", on_click=_compute_map,
                      args=(searcher,), type="primary")
        st.code(f"papersift map --index {searcher.index.root}", language="bash")
        return
    if 0 <= state.cluster < len(atlas.labels):
        cluster_page(searcher, atlas, state)
        return
    st.subheader("Map of the field")
    points = map_points(str(searcher.index.generation), state.filters, searcher)
    highlight = []
    if state.query:
        hits = searcher.search(state.query, HIGHLIGHT, state.filters, mode=state.mode)
        rows = searcher.rows_of([h.id for h in hits])
        highlight = [(rows[h.id], h.id, h.paper.title) for h in hits if h.id in rows]
    st.caption(render.escape_md(_map_note(searcher, atlas, points, state, len(highlight))))
    st.plotly_chart(map_figure(atlas, points, highlight, state.query), key="map",
                    on_select=lambda: _open_clicked(state), selection_mode="points",
                    config={"displaylogo": False, "scrollZoom": True})
    st.subheader("Topics")
    sizes = atlas.sizes
    passing = np.bincount(atlas.clusters[searcher.allowed_rows(state.filters)],
                          minlength=len(sizes)) if state.filters.active else sizes
    order = sorted(range(len(atlas.labels)), key=lambda c: (-passing[c], -sizes[c]))
    cols = st.columns(3)
    for i, c in enumerate(order):
        count = f"{passing[c]:,} of {sizes[c]:,}" if state.filters.active else f"{sizes[c]:,}"
        with cols[i % 3]:
            nav_button(f"{c + 1}. {render.escape_md(atlas.labels[c])} ({count})",
                       state.with_(cluster=c, page=1), key=f"cluster-{c}", type="tertiary")


def _map_note(searcher: Searcher, atlas, points: dict, state: ViewState, circled: int) -> str:
    """The caption over the map: what is drawn, what passes the filters, what is circled."""
    note = f"{searcher.count:,} papers in {len(atlas.labels)} topics ({atlas.info.get('method', '?')} layout)"
    if state.filters.active:
        note += f"; {points['passing']:,} pass the filters, in colour"
        note += "; the others in grey" if len(points["faint"]) else ""
    shown = len(points["rows"])
    if shown < points["passing"]:
        note += f"; drawing an even sample of {shown:,}"
    if circled:
        note += f"; circled: the {circled} best results for the question"
    elif state.query:
        note += "; no close match for the question" + (
            " passes the filters" if state.filters.active else "")
    return note + ". Click a point to open the paper; click a topic in the legend to hide it."


def cluster_page(searcher: Searcher, atlas, state: ViewState) -> None:
    """One cluster's papers, the most typical (closest to the cluster's centre) first."""
    c = state.cluster
    nav_button("← Back to the map", state.with_(cluster=-1, page=1), key="back-map")
    st.subheader(f"Topic {c + 1}: {render.escape_md(atlas.labels[c])}")
    members = np.flatnonzero(atlas.clusters == c)
    note = f"Distinctive terms: {', '.join(atlas.terms[c][:8])}"
    if state.filters.active:
        total = len(members)
        members = np.intersect1d(members, searcher.allowed_rows(state.filters))
        note += f". {len(members):,} of its {total:,} papers pass the filters"
    elif len(members) > MAX_RESULTS:  # else the results' caption gives the count
        note += f". {len(members):,} papers, the {MAX_RESULTS} most typical below"
    st.caption(render.escape_md(note))
    if len(members) == 0:
        st.info("No papers of this topic pass the filters.")
        return
    vectors = np.asarray(searcher.index.vectors[members], dtype=np.float32)
    centre = vectors.mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    scores = vectors @ centre
    order = np.argsort(-scores, kind="stable")[:MAX_RESULTS]
    papers = searcher.index.papers.papers(members[order].tolist())
    hits = [Hit(rank=i, score=float(scores[j]), paper=papers[int(members[j])])
            for i, j in enumerate(order, start=1)]
    show_results(hits, state, "Most typical first")  # it counts the papers it lists


# ---------------------------------------------------------------- reading lists


def _create_list() -> None:
    name = st.session_state.get("new-list-name", "")
    try:
        made = reading_lists().create(name)
    except ListError as e:
        st.session_state.list_error = str(e)
        return
    go(ViewState(view="lists", list=made))


def _ask_delete(name: str | None) -> None:
    st.session_state.delete_pending = name


def _delete_list(name: str) -> None:
    st.session_state.pop("delete_pending", None)
    reading_lists().delete(name)
    go(ViewState(view="lists"))


def _import(name: str, searcher: Searcher) -> None:
    upload = st.session_state.get("bib-upload")
    if upload is None:
        return
    try:
        text = upload.getvalue().decode("utf-8")
        report = import_bibtex(reading_lists(), name, text, searcher, source=upload.name)
    except UnicodeDecodeError:
        st.session_state.list_error = f"{upload.name}: not UTF-8 text"
        return
    except ListError as e:
        st.session_state.list_error = str(e)
        return
    found = report.entries - len(report.missing)
    st.session_state.list_note = (f"{upload.name}: {report.entries} entries, {found} found in "
                                  f"the index, {report.added} new in {report.name}.")
    if report.missing:
        st.session_state.list_missing = unmatched_note(report.missing)
    go(ViewState(view="lists", list=report.name))


def unmatched_note(missing: list, limit: int = 10) -> str:
    """'Not in this index: key (title); ... and N more.' for BibTeX entries (unescaped)."""
    named = [f"{e.key} ({render.preview(e.title, 60)})" if e.key and e.title else
             e.key or render.preview(e.title, 60) or e.arxiv_id or e.doi or "an entry without a key"
             for e in missing[:limit]]
    more = f"; and {len(missing) - limit} more" if len(missing) > limit else ""
    return f"Not in this index ({len(missing)}): " + "; ".join(named) + more + "."


def lists_page(searcher: Searcher, state: ViewState) -> None:
    store = reading_lists()
    lists = store.lists()
    st.subheader("Reading lists")
    if error := st.session_state.pop("list_error", ""):
        st.error(render.escape_md(error))
    if note := st.session_state.pop("list_note", ""):
        st.success(render.escape_md(note))
    if missing := st.session_state.pop("list_missing", ""):
        st.warning(render.escape_md(missing))
    names = [rl.name for rl in lists]
    left, right = st.columns([2, 3])
    with left:
        for rl in lists:
            nav_button(f"{render.escape_md(rl.name)} ({rl.count})", state.with_(list=rl.name, page=1),
                       key=f"list-{names.index(rl.name)}",
                       type="primary" if rl.name == state.list else "tertiary")
        if not lists:
            st.caption("No lists yet. Save papers from any result with “Save”, or make one here.")
        st.text_input("New list", key="new-list-name", placeholder="e.g. Thesis chapter 2",
                      on_change=_create_list)
    with right, st.expander("Import a BibTeX file"):
        target = st.text_input("Into list", value=state.list or "Imported", key="bib-target")
        st.file_uploader("BibTeX file", type=["bib", "bibtex", "txt"], key="bib-upload")
        st.button("Import", key="bib-import", on_click=_import, args=(target, searcher))
    if state.list and state.list in names:
        list_detail(searcher, state)
    elif state.list:
        st.warning(f"There is no reading list named {render.escape_md(state.list)}.")


def list_detail(searcher: Searcher, state: ViewState) -> None:
    store = reading_lists()
    items = store.items(state.list)
    papers = [i.paper for i in items]
    st.divider()
    st.subheader(render.escape_md(state.list))
    cols = st.columns([1, 1, 1, 3])
    with cols[0]:
        st.download_button("BibTeX", to_bibtex(papers), file_name=f"{_file_stem(state.list)}.bib",
                           mime="application/x-bibtex", key="dl-bib", width="stretch")
    with cols[1]:
        st.download_button("CSV", to_csv(items), file_name=f"{_file_stem(state.list)}.csv",
                           mime="text/csv", key="dl-csv", width="stretch")
    with cols[2]:
        st.button("Delete list", key="delete-list", on_click=_ask_delete, args=(state.list,),
                  width="stretch")
    if st.session_state.get("delete_pending") == state.list:
        confirm_delete(state.list, len(items))
    known = searcher.rows_of([p.id for p in papers])
    stored = searcher.index.papers.papers(sorted(known.values())) if known else {}
    hits = []
    for p in papers:
        row = known.get(p.id)
        paper = stored.get(row, p) if row is not None else p
        hits.append(Hit(rank=len(hits) + 1, score=float("nan"), paper=paper))
    if not hits:
        st.caption("This list is empty: use “Save” on any paper.")
        return
    for hit in hits:
        with st.container(border=True):
            title = render.escape_md(render.readable_math(hit.paper.title or hit.id))
            if hit.id in known:
                nav_button(f"**{title}**", state.with_(paper=hit.id), key=f"li-open-{hit.rank}",
                           type="tertiary")
            else:
                st.markdown(f"**{title}** · *not in this index*")
            st.caption(render.escape_md(" · ".join(x for x in (
                render.authors_line(hit.paper.authors), hit.paper.published, hit.id) if x)))
            st.button("Remove", key=f"li-remove-{hit.rank}", on_click=_remove,
                      args=(state.list, hit.id), type="tertiary")
    if known:
        st.subheader("Recommended for this list")
        recs = searcher.recommend(list(known), k=10, filters=state.filters)
        show_results(recs, state.with_(page=1), f"More like the {len(known)} papers of this list")


def confirm_delete(name: str, count: int) -> None:
    """The second step of "Delete list": nothing is deleted until this is pressed."""
    with st.container(border=True):
        st.markdown(f"Really delete the list **{render.escape_md(name)}** and its {count} "
                    f"saved {'paper' if count == 1 else 'papers'}? This cannot be undone.")
        yes, no, _ = st.columns([1, 1, 3])
        with yes:
            st.button("Delete it", key="delete-list-confirm", on_click=_delete_list,
                      args=(name,), type="primary", width="stretch")
        with no:
            st.button("Keep it", key="delete-list-cancel", on_click=_ask_delete, args=(None,),
                      width="stretch")


def _remove(name: str, paper_id: str) -> None:
    reading_lists().remove(name, [paper_id])


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).strip("-") or "list"


# ---------------------------------------------------------------- more like these


def more_page(searcher: Searcher, state: ViewState) -> None:
    known = searcher.rows_of(list(state.like))
    unwanted = list(searcher.rows_of(list(state.unlike)))
    if not known:
        st.info("Press “More like this” on papers you want more of; they collect here.")
        return
    liked = searcher.index.papers.papers(sorted(known.values()))
    names = "; ".join(render.preview(p.title, 60) for p in liked.values())
    st.subheader(f"More like {len(known)} papers" + (f", unlike {len(unwanted)}" if unwanted else ""))
    st.caption(render.escape_md(names))
    nav_button("Clear", state.with_(like=(), unlike=(), view="search"), key="clear-like")
    hits = searcher.recommend(list(known), unwanted, MAX_RESULTS, state.filters, state.sort)
    show_results(hits, state, "Closest to what you liked first")
