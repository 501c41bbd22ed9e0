"""The Streamlit app: search, filter, read a paper, walk to related work, explore the map,
keep reading lists, share any view by URL.

Run with `papersift ui`. The view lives in the URL (`ui/state.py`), so a link or a reload
reproduces it and the browser's back and forward buttons work. The searcher is loaded once
per process (st.cache_resource); ranking lives in `search/`, escaping in `ui/render.py`,
cards in `ui/components.py`, the Explore, list and "more like these" pages in
`ui/explore_views.py`.
"""

from __future__ import annotations

import streamlit as st

from indexer.errors import IndexNotFound, InvalidQuery, PapersiftError, UnknownPaper
from search import Searcher
from search.lists import ListError
from search.query import classify
from ui import explore_views, render
from ui.components import (
    MODE_LABELS,
    SORT_LABELS,
    from_widgets,
    load_engine,
    load_searcher,
    nav_button,
    show_paper,
    show_results,
    view,
)
from ui.settings import Settings
from ui.state import MAX_RESULTS, ViewState

VIEW_LABELS = {"search": "Search", "explore": "Explore", "lists": "Reading lists"}


def show_no_index(settings: Settings, error: IndexNotFound) -> None:
    st.title("papersift")
    st.info(
        f"No index yet at `{settings.index}`.\n\n"
        "Build the bundled 2,000-paper sample and open the app:\n\n"
        "```\npapersift demo\n```\n\n"
        "or index your own papers (JSON Lines or CSV):\n\n"
        f"```\npapersift build papers.jsonl --index {settings.index}\n```"
    )
    st.caption(render.escape_md(str(error)))


def sidebar(searcher: Searcher) -> None:
    with st.sidebar:
        st.header("papersift")
        st.caption(f"{searcher.count:,} papers · {render.escape_md(searcher.index.model.name)}")
        st.subheader("Filters")
        st.date_input("Published since", key="w_since", value=None, on_change=from_widgets)
        st.date_input("Published until", key="w_until", value=None, on_change=from_widgets)
        counts = dict(searcher.categories)
        st.multiselect("Categories", options=list(counts), key="w_cats", on_change=from_widgets,
                       format_func=lambda c: f"{c} ({counts.get(c, 0):,})")
        st.text_input("Author", key="w_author", on_change=from_widgets,
                      help="A name or part of one: Li, Müller, J Smith, Wei Li.")
        st.radio("Sort by", options=list(SORT_LABELS), key="w_sort", horizontal=True,
                 format_func=SORT_LABELS.get, on_change=from_widgets)
        st.radio("Match by", options=list(MODE_LABELS), key="w_mode", horizontal=True,
                 format_func=MODE_LABELS.get, on_change=from_widgets,
                 help="Hybrid fuses meaning (dense vectors) and keywords (BM25).")


def navigation(state: ViewState) -> None:
    """Search · Explore · Reading lists (and the "more like these" set once it has papers)."""
    current = "search" if state.view == "more" else state.view
    cols = st.columns([1, 1, 1.3, 1.9, 3])
    for col, (name, label) in zip(cols, VIEW_LABELS.items(), strict=False):
        with col:
            nav_button(label, ViewState(view=name, query=state.query, like=state.like,
                                        unlike=state.unlike), key=f"nav-{name}",
                       type="primary" if name == current and not state.paper else "secondary",
                       width="stretch")
    if state.like:
        with cols[3]:
            nav_button(f"More like these ({len(state.like)})", state.with_(
                view="more", paper="", similar="", page=1), key="nav-more", width="stretch",
                icon=":material/thumb_up:",
                type="primary" if state.view == "more" else "secondary")


def search_page(searcher: Searcher, state: ViewState) -> None:
    if state.similar:
        source = searcher.paper(state.similar)
        nav_button("← Back to results", state.with_(similar="", page=1), key="back")
        title = render.escape_md(render.readable_math(source.title))
        st.subheader(f"Papers similar to {title}")
        hits = searcher.similar(source.id, MAX_RESULTS, state.filters, state.sort)
        show_results(hits, state, "Most similar first")
    elif state.query:
        kind = classify(state.query)
        if kind.kind == "paper":
            try:
                searcher.paper(kind.value)
                show_paper(searcher, state.with_(paper=kind.value))
                return
            except UnknownPaper:
                st.warning(f"arXiv {render.escape_md(kind.value)} is not in this index; "
                           "showing papers matching the text instead.")
        with st.spinner("Searching…"):
            results = searcher.query(kind.value, MAX_RESULTS, state.filters, state.sort,
                                     state.mode, correct=kind.kind == "text" and not state.verbatim,
                                     floor=not state.everything)
        if results.corrected:
            st.markdown(f"Showing results for **{render.escape_md(results.query)}**")
            nav_button(f"Search instead for {render.escape_md(results.typed)}",
                       state.with_(verbatim=True, page=1), key="verbatim", type="tertiary")
        if results.no_close_matches:
            hint = " or loosen the filters" if state.filters.active else ""
            st.info(f"No close matches for “{render.escape_md(results.query[:120])}”: no paper is near "
                    f"it in meaning or shares its rarer words. Try other words{hint}.")
            nav_button("Show the nearest papers anyway", state.with_(everything=True, page=1),
                       key="everything", type="tertiary")
            return
        label = "Papers like the pasted abstract" if kind.kind == "abstract" else "Best match first"
        if state.sort != "relevance":
            label = (f"The {len(results.hits)} closest matches, "
                     f"{SORT_LABELS[state.sort].lower()} first")
        if results.below_floor and len(results.hits) < MAX_RESULTS:
            label += " · only close matches"
        show_results(results.hits, state, label)
        if results.below_floor and len(results.hits) < MAX_RESULTS:
            nav_button("Show less close papers too", state.with_(everything=True, page=1),
                       key="everything", type="tertiary")
    else:
        st.caption("Search by meaning: ask in plain language, filter in the sidebar, "
                   "open a paper to walk through its related work, or explore the map.")


def main() -> None:
    st.set_page_config(page_title="papersift", page_icon="🔎", layout="wide")
    settings = Settings.load()
    try:
        searcher = load_searcher(str(settings.index), settings.model)
    except IndexNotFound as e:
        show_no_index(settings, e)
        st.stop()
    except PapersiftError as e:
        st.error(str(e))
        st.stop()

    state = view()
    if problem := load_engine(str(settings.index), settings.model).problem:
        st.warning("The index was updated but its new version cannot be served; showing the "
                   f"previous one. {render.escape_md(problem)}")
    sidebar(searcher)
    navigation(state)
    if state.view in ("search", "more") or state.paper:
        st.text_input("Ask a question, type keywords, or paste an arXiv id, URL or abstract",
                      key="w_query", on_change=from_widgets,
                      placeholder="how do I distil a diffusion model into one step?")
    try:
        if state.paper:
            show_paper(searcher, state)
        elif state.view == "explore":
            explore_views.explore_page(searcher, state)
        elif state.view == "lists":
            explore_views.lists_page(searcher, state)
        elif state.view == "more":
            explore_views.more_page(searcher, state)
        else:
            search_page(searcher, state)
    except (UnknownPaper, InvalidQuery, ListError) as e:
        st.warning(render.escape_md(str(e)))


main()
