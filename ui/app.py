"""The Streamlit app: search, filter, read a paper, walk to related work, explore the map,
keep reading lists, share any view by URL.

Run with `papersift ui`. The view lives in the URL (`ui/state.py`), so a link or a reload
reproduces it and the browser's back and forward buttons work. The searcher is loaded once
per process (st.cache_resource); ranking lives in `search/`, escaping in `ui/render.py`,
cards in `ui/components.py`, the Explore, list and "more like these" pages in
`ui/explore_views.py`.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from indexer.categories import category_name
from indexer.errors import IndexNotFound, InvalidQuery, PapersiftError, UnknownPaper
from indexer.records import arxiv_abs_url, parse_date
from search import Searcher
from search.lists import ListError
from search.query import classify
from ui import cards, explore_views, render
from ui.components import (
    MODE_LABELS,
    SORT_LABELS,
    fetch_one,
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
EARLIEST = dt.date(1900, 1, 1)
QUESTION_LABEL = "Ask a question, type keywords, or paste an arXiv id, URL or abstract"
# Less empty space above the search box: more results fit on the first screen.
COMPACT_CSS = """<style>
@media (min-width: 640px) { .stMainBlockContainer { padding-top: 2.2rem; } }
</style>"""  # not on a phone, where the header with the sidebar button covers the top


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


def sidebar(searcher: Searcher, state: ViewState) -> None:
    with st.sidebar:
        st.header("papersift")
        st.caption(f"{searcher.count:,} papers · {render.escape_md(searcher.index.model.name)}")
        navigation(state)
        st.subheader("Filters")
        dates = index_dates(searcher)
        for key, label in (("w_since", "Published since"), ("w_until", "Published until")):
            if dates is None:
                st.date_input(label, key=key, on_change=from_widgets, format="YYYY-MM-DD",
                              help="This index has no publication dates.")
                continue
            first, last = dates
            chosen = st.session_state.get(key)
            # The calendar opens on the index's last day, not today; any earlier day can
            # be typed (a date from the URL past the last day stays as asked).
            st.date_input(label, key=key, on_change=from_widgets, format="YYYY-MM-DD",
                          min_value=min(first, EARLIEST), max_value=max(last, chosen or last),
                          help=f"This index covers {first} to {last}.")
        counts = dict(searcher.categories)
        st.multiselect("Categories", options=list(counts), key="w_cats", on_change=from_widgets,
                       format_func=lambda c: category_label(c, counts.get(c, 0)))
        st.text_input("Author", key="w_author", on_change=from_widgets,
                      help='A name or part of one: Li, Müller, J Smith, Wei Li; in double '
                           'quotes, exactly that name: "Wei Li".')
        sorts = [s for s in SORT_LABELS if s != "upvotes" or searcher.has_upvotes]
        if st.session_state.get("w_sort") not in sorts:
            st.session_state.w_sort = "relevance"
        st.radio("Sort by", options=sorts, key="w_sort", horizontal=True,
                 format_func=SORT_LABELS.get, on_change=from_widgets,
                 help="Newest and Upvotes reorder the close matches only.")
        st.radio("Match by", options=list(MODE_LABELS), key="w_mode", horizontal=True,
                 format_func=MODE_LABELS.get, on_change=from_widgets,
                 help="Hybrid fuses meaning (dense vectors) and keywords (BM25).")


def index_dates(searcher: Searcher) -> tuple[dt.date, dt.date] | None:
    """The first and last publication day in the index; None when it knows none."""
    try:
        first, last = (parse_date(text) for text in searcher.date_range)
    except ValueError:
        return None
    return first, last


def category_label(code: str, count: int) -> str:
    name = category_name(code)
    return f"{code} · {name} ({count:,})" if name else f"{code} ({count:,})"


def navigation(state: ViewState) -> None:
    """Search · Explore · Reading lists (and the "more like these" set once it has papers)."""
    current = "search" if state.view == "more" else state.view
    for name, label in VIEW_LABELS.items():
        nav_button(label, ViewState(view=name, query=state.query, like=state.like,
                                    unlike=state.unlike), key=f"nav-{name}",
                   type="primary" if name == current and not state.paper else "secondary",
                   width="stretch")
    if state.like:
        nav_button(f"More like these ({len(state.like)})", state.with_(
            view="more", paper="", similar="", page=1), key="nav-more", width="stretch",
            icon=":material/thumb_up:", type="primary" if state.view == "more" else "secondary")


def feed_page(searcher: Searcher, state: ViewState) -> None:
    """The home page without a question: the newest papers (filters apply), or with upvotes
    in the index the week's most upvoted, like Hugging Face's daily list."""
    if searcher.has_upvotes:
        tabs = st.columns([1, 1, 6])
        for col, (feed, label) in zip(tabs, (("newest", "Newest"), ("trending", "Trending")),
                                      strict=False):
            with col:
                nav_button(label, state.with_(feed=feed, page=1), key=f"feed-{feed}",
                           type="primary" if state.feed == feed else "secondary", width="stretch")
    feed = state.feed if searcher.has_upvotes else "newest"
    hits = searcher.browse(state.filters, MAX_RESULTS, feed)
    if feed == "trending":
        heading = ("Most upvoted" + (f" since {searcher.trending_since}"
                                     if searcher.trending_since else ""))
    else:
        newest = (f"The {len(hits)} newest papers" if len(hits) == MAX_RESULTS  # a cap, not all
                  else "Newest papers")
        heading = newest + (" matching the filters" if state.filters.active else "")
    show_results(hits, state, heading, empty=empty_message(searcher, state))


def empty_message(searcher: Searcher, state: ViewState) -> str:
    """Why a list is empty, naming the dates the index covers when dates are set."""
    text = "No papers match the filters." if state.filters.active else "No papers found."
    if state.since or state.until:
        first, last = searcher.date_range
        text += (f" This index covers {first} to {last}." if first and last
                 else " This index has no publication dates.")
    return text


def search_page(searcher: Searcher, state: ViewState) -> None:
    if state.similar:
        source = searcher.paper(state.similar)
        nav_button("← Back to results", state.with_(similar="", page=1), key="back")
        title = render.escape_md(render.readable_math(source.title))
        st.subheader(f"Papers similar to {title}")
        hits = searcher.similar(source.id, MAX_RESULTS, state.filters, state.sort)
        show_results(hits, state, "Most similar first", empty=empty_message(searcher, state))
    elif state.query:
        kind = classify(state.query)
        if kind.kind == "paper":
            try:
                searcher.paper(kind.value)
                show_paper(searcher, state.with_(paper=kind.value))
                return
            except UnknownPaper:
                not_in_index(searcher, state, kind.value)
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
        show_results(results.hits, state, label, empty=empty_message(searcher, state))
        if results.below_floor and len(results.hits) < MAX_RESULTS:
            nav_button("Show less close papers too", state.with_(everything=True, page=1),
                       key="everything", type="tertiary")
    else:
        feed_page(searcher, state)


def not_in_index(searcher: Searcher, state: ViewState, paper_id: str) -> None:
    """An arXiv id the index lacks: links to it on arxiv.org and a button that fetches it
    and adds it (the normal update path, under the writer lock)."""
    links = " · ".join(render.link_md(name, url) for name, url in (
        ("abstract on arxiv.org", arxiv_abs_url(paper_id)),
        ("PDF", f"https://arxiv.org/pdf/{paper_id}")) if url)
    st.warning(f"arXiv {render.escape_md(paper_id)} is not in this index. {links}")
    if error := st.session_state.pop("fetch_error", ""):
        st.error(render.escape_md(error))
    st.button(f"Fetch {paper_id} from arXiv and add it to the index", key="fetch-one",
              on_click=fetch_one, args=(searcher, state, paper_id), icon=":material/download:")
    st.caption("Showing papers matching the text instead.")


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
    if state.sort == "upvotes" and not searcher.has_upvotes:  # a URL from another index
        state = state.with_(sort="relevance")
    if problem := load_engine(str(settings.index), settings.model).problem:
        st.warning("The index was updated but its new version cannot be served; showing the "
                   f"previous one. {render.escape_md(problem)}")
    sidebar(searcher, state)
    st.html(COMPACT_CSS)
    with st.sidebar:
        cards.keyboard(QUESTION_LABEL, focus=not state.query and not state.paper
                       and state.view in ("search", "explore"))
    if state.view in ("search", "more", "explore") or state.paper:
        st.text_input(QUESTION_LABEL, key="w_query", on_change=from_widgets,
                      label_visibility="collapsed",  # the placeholder says it; more room
                      placeholder="Ask a question (how do I distil a diffusion model into one "
                                  "step?), type keywords, or paste an arXiv id, URL or abstract")
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
    except PapersiftError as e:  # the index was damaged under the running app
        st.error(render.escape_md(f"{e}. Run: papersift repair --index {settings.index} "
                                  "(it restores the last sound version)."))


main()
