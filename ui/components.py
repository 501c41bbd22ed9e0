"""Shared pieces of the app's pages: the view state in the URL, navigation, results, the
paper page, the Save and Cite dialogs.

Every page renders papers through `show_results` (ui/cards.py draws the cards), so
escaping, "Similar", "More like this", "Save" and "Cite" work the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from indexer.errors import PapersiftError
from indexer.records import Paper, parse_date
from search import Hit, Searcher
from search.engine import Engine
from search.lists import ListError, ReadingLists, to_bibtex
from ui import cards, render
from ui.settings import Settings
from ui.state import PAGE_SIZE, ViewState

SORT_LABELS = {"relevance": "Relevance", "newest": "Newest", "upvotes": "Upvotes"}
MODE_LABELS = {"hybrid": "Hybrid", "dense": "Meaning", "bm25": "Keywords"}


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
    if query != current.query:  # a new question lands on the results (or the map it follows)
        current = current.with_(view="explore" if current.view == "explore" else "search",
                                cluster=-1, verbatim=False, everything=False)
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
    label = "Saved ✓" if lists.holding.get(paper.id) else "Save"
    with st.popover(label, width="stretch"):
        save_options(paper, key, lists)


def save_options(paper: Paper, key: str, lists: ListsView) -> None:
    """Add to or remove from each list, or start a new list."""
    if lists.error:
        st.caption(render.escape_md(lists.error))
        return
    holding = set(lists.holding.get(paper.id, ()))
    for i, name in enumerate(lists.names):
        if name in holding:
            st.button(f"✓ {render.escape_md(name)} (remove)", key=f"unsave-{key}-{i}",
                      on_click=_unsave, args=(name, paper.id), type="tertiary")
        else:
            st.button(f"Add to {render.escape_md(name)}", key=f"save-{key}-{i}", on_click=_save,
                      args=(name, paper), type="tertiary")
    st.text_input("New list", key=f"newlist-{key}", placeholder="Name a new list",
                  on_change=_save_new, args=(f"newlist-{key}", paper))
    if error := st.session_state.pop("list_error", ""):
        st.warning(render.escape_md(error))


def like_buttons(paper: Paper, state: ViewState, key: str) -> None:
    """Thumbs up adds the paper to the "more like these" set (the cards' "Not this", on that
    page, to the unwanted set). Material icons: they render where no emoji font is installed."""
    liked = paper.id in state.like
    nav_button("Liked" if liked else "More like this", state.toggle_like(paper.id),
               key=f"like-{key}", width="stretch", type="primary" if liked else "secondary",
               icon=":material/thumb_up:")


# ---------------------------------------------------------------- cards


def show_results(hits: list[Hit], state: ViewState, heading: str, empty: str = "") -> None:
    """A page of result cards (ui/cards.py) under a caption that counts what is shown."""
    if not hits:
        hint = " or loosen the filters" if state.filters.active else ""
        st.info(empty or f"No papers found. Try other words{hint}.")
        return
    shown, page, pages = cards.page_of(hits, state)
    first = (page - 1) * PAGE_SIZE + 1
    where = (f"{first}–{first + len(shown) - 1} of {len(hits)}" if pages > 1
             else f"{len(hits)} {'paper' if len(hits) == 1 else 'papers'}")
    st.caption(f"{heading} · {where}")
    lists = ListsView.load([h.id for h in shown])
    cards.show_cards(shown, state, saved=set(lists.holding), page=page, pages=pages)
    open_dialog()


def open_dialog() -> None:
    """The Save or Cite dialog a card asked for (once)."""
    asked = st.session_state.pop("dialog", None)
    if not asked:
        return
    what, paper_id = asked
    settings = Settings.load()
    searcher = load_searcher(str(settings.index), settings.model)
    try:
        paper = searcher.paper(paper_id)
    except PapersiftError:  # removed by an update since the page was drawn
        st.toast(f"{render.escape_md(paper_id[:80])} is no longer in the index")
        return
    (save_dialog if what == "save" else cite_dialog)(paper)


@st.dialog("Save to a reading list")
def save_dialog(paper: Paper) -> None:
    st.markdown(f"**{render.escape_md(render.readable_math(paper.title or paper.id))}**")
    save_options(paper, "dialog", ListsView.load([paper.id]))


@st.dialog("Cite", width="large")
def cite_dialog(paper: Paper) -> None:
    st.caption("BibTeX, as reading-list exports write it; the button at the right copies it.")
    st.code(to_bibtex([paper]), language="bibtex", wrap_lines=True)


def show_paper(searcher: Searcher, state: ViewState) -> None:
    paper = searcher.paper(state.paper)
    nav_button("← Back to results", state.with_(paper=""), key="back")
    st.header(render.escape_md(render.readable_math(paper.title or paper.id)))
    names = ", ".join(cards.link(a, author_view(state, a), title=f"Papers by {a}")
                      for a in paper.authors)  # each name lists that author's papers
    cards.show_html(f'<div class="authors">{names or "<i>no authors listed</i>"}</div>'
                    f'<div class="meta">{cards.meta_html(paper, authors=False, category=False)}'
                    f" · {cards.esc(paper.id)}</div>", key="paper-head")
    if line := badges_and_links(paper):
        st.markdown(line)
    st.markdown(render.escape_md(render.readable_math(paper.abstract)))
    left, mid, right, _ = st.columns([1.4, 1, 1, 3.6])
    with left:
        like_buttons(paper, state, "paper")
    with mid:
        save_menu(paper, "paper", ListsView.load([paper.id]))
    with right, st.popover("Cite", width="stretch"):
        st.code(to_bibtex([paper]), language="bibtex", wrap_lines=True)
    st.subheader("Related work")
    related = searcher.similar(paper.id, k=10)
    lists = ListsView.load([h.id for h in related])
    cards.show_cards(related, state.with_(similar="", page=1), saved=set(lists.holding),
                     key="related", rank=False)
    if related:
        nav_button("Show more related papers →", state.with_(similar=paper.id, paper="", page=1,
                                                           view="search"),
                   key="more-related", type="tertiary")
    open_dialog()


def author_view(state: ViewState, author: str) -> ViewState:
    """The home feed of the papers of exactly this author (the other filters kept)."""
    return ViewState(view="search", author=f'"{author[:190]}"', since=state.since,
                     until=state.until, categories=state.categories)


@st.cache_resource(show_spinner="Loading the model to encode the new paper…")
def document_encoder(model: str | None):
    """The index's model for encoding papers (the query encoder may be a query-only
    conversion), loaded once per app process, the first time a paper is added."""
    from ui.clikit import make_encoder

    return make_encoder(model)


def fetch_one(searcher: Searcher, state: ViewState, paper_id: str) -> None:
    """Fetch one arXiv paper and add it to the index, then open its page."""
    from indexer.fetch import Unreachable
    from indexer.update import add_arxiv_paper

    settings = Settings.load()
    with st.spinner(f"Fetching {paper_id} from arXiv and adding it…"):
        try:
            paper = add_arxiv_paper(searcher.index.root, paper_id,
                                    document_encoder(settings.model),
                                    base_url=settings.source_url("arxiv"))
        except Unreachable:
            st.session_state.fetch_error = (f"Could not add {paper_id}: arXiv cannot be "
                                            "reached (offline?). Nothing was changed.")
            return
        except PapersiftError as e:
            st.session_state.fetch_error = f"Could not add {paper_id}: {e}. Nothing was changed."
            return
    st.toast(f"Added {render.escape_md(paper.id)} to the index")
    go(state.with_(query="", paper=paper.id, page=1))


def badges_and_links(paper: Paper) -> str:
    links = " · ".join(f"[{name}]({url})" for name, url in render.paper_links(paper).items())
    return "  ".join(x for x in (render.category_badges(paper), links) if x)
