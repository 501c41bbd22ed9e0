"""The Streamlit app: ask a question, read ranked papers, follow "Similar".

Run with `papersift ui`. The searcher is loaded once per process (st.cache_resource);
ranking lives in `search/`, escaping and links in `ui/render.py`.
"""

from __future__ import annotations

import streamlit as st

from indexer.errors import IndexNotFound, PapersiftError
from search import Hit, Searcher
from ui import render
from ui.settings import Settings


@st.cache_resource(show_spinner="Loading the index and the model…")
def load_searcher(index: str, model: str | None) -> Searcher:
    from indexer.encoder import SentenceTransformerEncoder

    return Searcher(index, SentenceTransformerEncoder(model))


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


def show_hit(hit: Hit) -> None:
    paper = hit.paper
    with st.container(border=True):
        links = render.paper_links(paper)
        title = render.escape_md(paper.title or paper.id)
        first = next(iter(links.values()), "")
        st.markdown(f"#### {hit.rank}. " + (f"[{title}]({first})" if first else title))
        meta = [render.authors_line(paper.authors), paper.published, f"score {hit.score:.3f}"]
        if paper.upvotes is not None:
            meta.append(f"▲ {paper.upvotes}")
        st.caption(" · ".join(render.escape_md(m) for m in meta if m))
        badges = render.category_badges(paper)
        link_row = " · ".join(f"[{name}]({url})" for name, url in links.items())
        if badges or link_row:
            st.markdown("  ".join(x for x in (badges, link_row) if x))
        if paper.abstract:
            st.markdown(render.escape_md(render.preview(paper.abstract)))
            if len(paper.abstract) > len(render.preview(paper.abstract)):
                with st.expander("Full abstract"):
                    st.markdown(render.escape_md(paper.abstract))
        st.button("Similar", key=f"similar-{hit.rank}-{paper.id}",
                  on_click=_set_similar, args=(paper.id,))


def _set_similar(paper_id: str) -> None:
    st.session_state["similar_to"] = paper_id


def _clear_similar() -> None:
    st.session_state.pop("similar_to", None)


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

    with st.sidebar:
        st.header("papersift")
        st.caption(f"{searcher.count:,} papers · {searcher.index.model.name}")
        k = st.slider("Results", min_value=5, max_value=100, value=20, step=5)

    query = st.text_input(
        "Ask a question or type keywords",
        key="query",
        placeholder="how do I distil a diffusion model into one step?",
        on_change=_clear_similar,
    )
    similar_to = st.session_state.get("similar_to")
    if similar_to:
        source = searcher.paper(similar_to)
        st.button("← Back to results", on_click=_clear_similar)
        st.subheader("Papers similar to " + render.escape_md(source.title))
        hits = searcher.similar(similar_to, k)
    elif query.strip():
        with st.spinner("Searching…"):
            hits = searcher.search(query, k)
    else:
        st.caption("Search by meaning: ask in plain language, then follow “Similar”.")
        return
    if not hits:
        st.info("No papers found. Try fewer or different words.")
    for hit in hits:
        show_hit(hit)


main()
