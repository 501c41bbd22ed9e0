"""Shared pieces of the app's pages: the view state in the URL, navigation, paper cards.

Every page renders papers through `show_hit` and `show_results`, so escaping
(`ui/render.py`), "Similar", "More like this" and "Save to list" work the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from indexer.records import Paper, parse_date
from search import Hit, Searcher
from search.engine import Engine
from search.lists import ListError, ReadingLists
from ui import render
from ui.settings import Settings
from ui.state import PAGE_SIZE, ViewState, page_count

SORT_LABELS = {"relevance": "Relevance", "newest": "Newest", "upvotes": "Upvotes"}
MODE_LABELS = {"hybrid": "Hybrid", "dense": "Meaning", "bm25": "Keywords"}
SOURCE_NAMES = {"dense": "meaning (dense vectors)", "bm25": "keywords (BM25)"}


@st.cache_resource(show_spinner="Loading the index and the model…")
def load_engine(index: str, model: str | None) -> Engine:
    """The index and model, loaded once per app process (usually at server start, by
    ui/asgi.py); the engine follows updates."""
    from search.engine import shared_engine

    return shared_engine(index, model)


def load_searcher(index: str, model: str | None) -> Searcher:
    """The searcher of the index's newest generation, for one run of a page: an update
    made while the app runs is served from the next run on, without a restart."""
    return load_engine(index, model).searcher()


# ---------------------------------------------------------------- state <-> URL <-> widgets


def view() -> ViewState:
    """The state in the URL; widgets are reset to it when the URL changed (back/forward)."""
    state = ViewState.from_params({k: st.query_params.get_all(k) for k in st.query_params})
    if st.session_state.get("applied") != state:
        ss = st.session_state
        ss.w_query, ss.w_author, ss.w_sort = state.query, state.author, state.sort
        ss.w_mode = state.mode
        ss.w_since = parse_date(state.since) if state.since else None
        ss.w_until = parse_date(state.until) if state.until else None
        ss.w_cats = list(state.categories)
        ss.applied = state
    if problem := state.date_problem:
        st.warning(problem)
    return state


def go(state: ViewState) -> None:
    """Navigate: the URL changes (a browser history entry) and the page reruns."""
    st.query_params.from_dict(state.to_params())
    st.session_state.applied = None  # widgets follow the new state on the next run


def from_widgets() -> None:
    ss = st.session_state
    current: ViewState = ss.get("applied") or ViewState()
    query = " ".join(ss.get("w_query", current.query).split())
    if query != current.query:  # a new question always lands on the search results
        current = current.with_(view="search", cluster=-1, verbatim=False, everything=False)
    go(current.with_(
        query=query, author=ss.w_author.strip(), sort=ss.w_sort,
        mode=ss.w_mode,
        since=ss.w_since.isoformat() if ss.w_since else "",
        until=ss.w_until.isoformat() if ss.w_until else "",
        categories=tuple(ss.w_cats), page=1, paper="", similar="",
    ))


def nav_button(label: str, state: ViewState, key: str, **kwargs) -> None:
    st.button(label, key=key, on_click=go, args=(state,), **kwargs)


def reading_lists() -> ReadingLists:
    return ReadingLists(Settings.load().lists)


def _save(name: str, paper: Paper) -> None:
    try:
        reading_lists().add(name, [paper])
        st.toast(f"Saved to {render.escape_md(name)}")
    except ListError as e:
        st.session_state.list_error = str(e)


def _unsave(name: str, paper_id: str) -> None:
    reading_lists().remove(name, [paper_id])
    st.toast(f"Removed from {render.escape_md(name)}")


def _save_new(key: str, paper: Paper) -> None:
    name = st.session_state.get(key, "")
    if name.strip():
        _save(name, paper)


@dataclass(frozen=True)
class ListsView:
    """The reading lists as one page shows them: read once per page, not once per card."""

    names: tuple[str, ...] = ()
    holding: dict = field(default_factory=dict)  # paper id -> names of the lists holding it
    error: str = ""

    @classmethod
    def load(cls, paper_ids) -> ListsView:
        store = reading_lists()
        try:
            return cls(tuple(rl.name for rl in store.lists()), store.memberships(list(paper_ids)))
        except ListError as e:
            return cls(error=str(e))


def save_menu(paper: Paper, key: str, lists: ListsView) -> None:
    """A "Save" popover: add to or remove from each list, or start a new list."""
    if lists.error:
        st.caption(render.escape_md(lists.error))
        return
    holding = set(lists.holding.get(paper.id, ()))
    label = "Saved ✓" if holding else "Save"
    with st.popover(label, width="stretch"):
        for i, name in enumerate(lists.names):
            if name in holding:
                st.button(f"✓ {render.escape_md(name)} (remove)", key=f"unsave-{key}-{i}", on_click=_unsave,
                          args=(name, paper.id), type="tertiary")
            else:
                st.button(f"Add to {render.escape_md(name)}", key=f"save-{key}-{i}", on_click=_save,
                          args=(name, paper), type="tertiary")
        st.text_input("New list", key=f"newlist-{key}", placeholder="Name a new list",
                      on_change=_save_new, args=(f"newlist-{key}", paper))
    if error := st.session_state.pop("list_error", ""):
        st.warning(render.escape_md(error))


def like_buttons(paper: Paper, state: ViewState, key: str) -> None:
    """Thumbs up adds the paper to the "more like these" set (thumbs down, on that page, to
    the unwanted set). Material icons: they render where no emoji font is installed."""
    liked = paper.id in state.like
    like = tuple(x for x in state.like if x != paper.id) if liked else (*state.like, paper.id)
    nav_button("Liked" if liked else "More like this",
               state.with_(like=like, unlike=tuple(x for x in state.unlike if x != paper.id)),
               key=f"like-{key}", width="stretch", type="primary" if liked else "secondary",
               icon=":material/thumb_up:")
    if state.view == "more":
        disliked = paper.id in state.unlike
        unlike = tuple(x for x in state.unlike if x != paper.id) if disliked else (
            *state.unlike, paper.id)
        nav_button("Not this" if not disliked else "Unwanted",
                   state.with_(unlike=unlike, like=tuple(x for x in state.like if x != paper.id)),
                   key=f"unlike-{key}", width="stretch", icon=":material/thumb_down:")


# ---------------------------------------------------------------- cards


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


def show_hit(hit: Hit, state: ViewState, lists: ListsView) -> None:
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
        left, *right = st.columns([4, 1, 1.4, 1], vertical_alignment="center")
        with left:
            if line := badges_and_links(paper):
                st.markdown(line)
        with right[0]:
            nav_button("Similar", state.with_(similar=paper.id, paper="", page=1, view="search"),
                       key=f"sim-{key}", width="stretch")
        with right[1]:
            like_buttons(paper, state, key)
        with right[2]:
            save_menu(paper, key, lists)
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
    shown = hits[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    lists = ListsView.load([h.id for h in shown])
    for hit in shown:
        show_hit(hit, state, lists)
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
    left, right, _ = st.columns([1.4, 1, 4])
    with left:
        like_buttons(paper, state, "paper")
    with right:
        save_menu(paper, "paper", ListsView.load([paper.id]))
    st.subheader("Related work")
    for hit in searcher.similar(paper.id, k=10):
        with st.container(border=True):
            title = render.escape_md(render.readable_math(hit.paper.title or hit.id))
            nav_button(title, state.with_(paper=hit.id), key=f"rel-{hit.id}", type="tertiary")
            st.caption(meta_line(hit.paper, hit.score))
