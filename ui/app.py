"""The Streamlit app: search, filter, read a paper, walk to related work, share by URL.

Run with `papersift ui`. The view lives in the URL (`ui/state.py`), so a link or a reload
reproduces it and the browser's back and forward buttons work. The searcher is loaded once
per process (st.cache_resource); ranking lives in `search/`, escaping in `ui/render.py`.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from indexer.errors import IndexNotFound, InvalidQuery, PapersiftError, UnknownPaper
from indexer.records import Paper
from search import Hit, Searcher
from search.query import classify
from ui import render
from ui.settings import Settings
from ui.state import MAX_RESULTS, PAGE_SIZE, ViewState, page_count

SORT_LABELS = {"relevance": "Relevance", "newest": "Newest", "upvotes": "Upvotes"}
MODE_LABELS = {"hybrid": "Hybrid", "dense": "Meaning", "bm25": "Keywords"}
SOURCE_NAMES = {"dense": "meaning (dense vectors)", "bm25": "keywords (BM25)"}


@st.cache_resource(show_spinner="Loading the index and the model…")
def load_searcher(index: str, model: str | None) -> Searcher:
    from indexer.encoder import SentenceTransformerEncoder

    return Searcher(index, SentenceTransformerEncoder(model))


# ---------------------------------------------------------------- state <-> URL <-> widgets


def view() -> ViewState:
    """The state in the URL; widgets are reset to it when the URL changed (back/forward)."""
    state = ViewState.from_params({k: st.query_params.get_all(k) for k in st.query_params})
    if st.session_state.get("applied") != state:
        ss = st.session_state
        ss.w_query, ss.w_author, ss.w_sort = state.query, state.author, state.sort
        ss.w_mode = state.mode
        ss.w_since = dt.date.fromisoformat(state.since) if state.since else None
        ss.w_until = dt.date.fromisoformat(state.until) if state.until else None
        ss.w_cats = list(state.categories)
        ss.applied = state
    return state


def go(state: ViewState) -> None:
    """Navigate: the URL changes (a browser history entry) and the page reruns."""
    st.query_params.from_dict(state.to_params())
    st.session_state.applied = None  # widgets follow the new state on the next run


def _from_widgets() -> None:
    ss = st.session_state
    current: ViewState = ss.get("applied") or ViewState()
    go(current.with_(
        query=" ".join(ss.w_query.split()), author=ss.w_author.strip(), sort=ss.w_sort,
        mode=ss.w_mode,
        since=ss.w_since.isoformat() if ss.w_since else "",
        until=ss.w_until.isoformat() if ss.w_until else "",
        categories=tuple(ss.w_cats), page=1, paper="", similar="",
    ))


def nav_button(label: str, state: ViewState, key: str, **kwargs) -> None:
    st.button(label, key=key, on_click=go, args=(state,), **kwargs)


# ---------------------------------------------------------------- pieces


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
        st.date_input("Published since", key="w_since", value=None, on_change=_from_widgets)
        st.date_input("Published until", key="w_until", value=None, on_change=_from_widgets)
        counts = dict(searcher.categories)
        st.multiselect("Categories", options=list(counts), key="w_cats", on_change=_from_widgets,
                       format_func=lambda c: f"{c} ({counts.get(c, 0):,})")
        st.text_input("Author contains", key="w_author", on_change=_from_widgets)
        st.radio("Sort by", options=list(SORT_LABELS), key="w_sort", horizontal=True,
                 format_func=SORT_LABELS.get, on_change=_from_widgets)
        st.radio("Match by", options=list(MODE_LABELS), key="w_mode", horizontal=True,
                 format_func=MODE_LABELS.get, on_change=_from_widgets,
                 help="Hybrid fuses meaning (dense vectors) and keywords (BM25).")


def meta_line(paper: Paper, score: float | None = None, authors: bool = True) -> str:
    parts = [render.authors_line(paper.authors) if authors else "", paper.published]
    if paper.upvotes is not None:
        parts.append(f"▲ {paper.upvotes}")
    if score is not None:
        parts.append(f"score {score:.3f}")
    return " · ".join(render.escape_md(p) for p in parts if p)


def badges_and_links(paper: Paper) -> str:
    links = " · ".join(f"[{name}]({url})" for name, url in render.paper_links(paper).items())
    return "  ".join(x for x in (render.category_badges(paper), links) if x)


def show_hit(hit: Hit, state: ViewState) -> None:
    paper = hit.paper
    key = f"{hit.rank}-{paper.id}"
    with st.container(border=True):
        title = render.escape_md(render.readable_math(paper.title or paper.id))
        nav_button(f"**{hit.rank}. {title}**", state.with_(paper=paper.id), key=f"open-{key}",
                   type="tertiary")
        st.caption(meta_line(paper, hit.score))
        abstract = render.readable_math(paper.abstract)
        short = render.preview(abstract)
        if short:
            st.markdown(render.escape_md(short))
        left, right = st.columns([5, 1], vertical_alignment="center")
        with left:
            if line := badges_and_links(paper):
                st.markdown(line)
        with right:
            nav_button("Similar", state.with_(similar=paper.id, paper="", page=1),
                       key=f"sim-{key}", width="stretch")
        if short != abstract:
            with st.expander("Full abstract"):
                st.markdown(render.escape_md(abstract))
        if hit.sources:
            with st.expander("Why this result"):
                st.markdown(why(hit, state.mode))


def why(hit: Hit, mode: str) -> str:
    """Which retrievers found a hit, and at which rank."""
    found = [f"{SOURCE_NAMES[name]}: rank {rank}" for name, rank in sorted(hit.sources.items())]
    text = "Found by " + "; ".join(found) + "."
    if mode == "hybrid" and set(hit.sources) == {"dense"}:
        text += " Few or no shared keywords: found by meaning alone."
    elif mode == "hybrid" and set(hit.sources) == {"bm25"}:
        text += " Not among the closest by meaning: found by its keywords."
    return render.escape_md(text)


def show_results(hits: list[Hit], state: ViewState, heading: str) -> None:
    if not hits:
        hint = " or loosen the filters" if state.filters.active else ""
        st.info(f"No papers found. Try other words{hint}.")
        return
    pages = page_count(len(hits))
    page = min(state.page, pages)
    st.caption(f"{heading} · {len(hits)} papers · page {page} of {pages}")
    for hit in hits[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        show_hit(hit, state)
    cols = st.columns([1, 1, 4])
    with cols[0]:
        nav_button("← Previous", state.with_(page=page - 1), key="prev", disabled=page <= 1)
    with cols[1]:
        nav_button("Next →", state.with_(page=page + 1), key="next", disabled=page >= pages)


def show_paper(searcher: Searcher, state: ViewState) -> None:
    paper = searcher.paper(state.paper)
    nav_button("← Back to results", state.with_(paper=""), key="back")
    st.header(render.escape_md(render.readable_math(paper.title or paper.id)))
    st.markdown(render.escape_md(", ".join(paper.authors)) or "*no authors listed*")
    st.caption(" · ".join(x for x in (meta_line(paper, authors=False), render.escape_md(paper.id)) if x))
    if line := badges_and_links(paper):
        st.markdown(line)
    st.markdown(render.escape_md(render.readable_math(paper.abstract)))
    st.subheader("Related work")
    for hit in searcher.similar(paper.id, k=10):
        with st.container(border=True):
            title = render.escape_md(render.readable_math(hit.paper.title or hit.id))
            nav_button(title, state.with_(paper=hit.id), key=f"rel-{hit.id}", type="tertiary")
            st.caption(meta_line(hit.paper, hit.score))


# ---------------------------------------------------------------- page


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
    sidebar(searcher)
    st.text_input("Ask a question, type keywords, or paste an arXiv id, URL or abstract",
                  key="w_query", on_change=_from_widgets,
                  placeholder="how do I distil a diffusion model into one step?")
    try:
        if state.paper:
            show_paper(searcher, state)
        elif state.similar:
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
                hits = searcher.search(kind.value, MAX_RESULTS, state.filters, state.sort,
                                       state.mode)
            label = "Papers like the pasted abstract" if kind.kind == "abstract" else "Best match first"
            if state.sort != "relevance":
                label = f"The {MAX_RESULTS} best matches, {SORT_LABELS[state.sort].lower()} first"
            show_results(hits, state, label)
        else:
            st.caption("Search by meaning: ask in plain language, filter in the sidebar, "
                       "open a paper to walk through its related work.")
    except UnknownPaper as e:
        st.warning(render.escape_md(str(e)))
    except InvalidQuery as e:
        st.warning(render.escape_md(str(e)))


main()
