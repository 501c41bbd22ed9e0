"""Result cards as one HTML block, so a page of twenty papers is one element to draw.

Each card: the title as a real link to the paper's page (`<a href="?paper=ID...">`, so
middle-click, open-in-new-tab and copy-link work), one meta line (authors +N, date, primary
category with its name on hover, upvotes, score), a three-line abstract that expands in
place, and one toolbar of small actions (Abstract, Similar, More like this, Save, Cite,
Why, arXiv, PDF). A plain left click on an in-app link does not reload the page: the
component's script hands the link's query string to Python (`nav` trigger), which moves
the view there (one rerun); Save and Cite are `act` triggers that open a dialog. Keyboard:
the title and the toolbar are the card's two tab stops; arrow keys move along the toolbar.

Every piece of paper text goes through `esc` (html.escape, no bidi overrides); the only
links are in-app query strings built from the view state and https arXiv/DOI links from
`render.paper_links`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import streamlit as st

from indexer.categories import category_name
from indexer.records import Paper
from search import Hit
from ui import render
from ui.state import PAGE_SIZE, ViewState, page_count

SOURCE_NAMES = {"dense": "meaning (dense vectors)", "bm25": "keywords (BM25)"}

CSS = """
:host { display: block; }
.cards { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #262730); }
.card { padding: 0.45rem 0.2rem 0.5rem;
        border-bottom: 1px solid var(--st-border-color, rgba(128,128,128,.25)); }
.card:last-of-type { border-bottom: none; }
.title { margin: 0; font-size: 1.08rem; line-height: 1.35; font-weight: 600;
         display: -webkit-box; -webkit-line-clamp: 3; line-clamp: 3; -webkit-box-orient: vertical;
         overflow: hidden; overflow-wrap: anywhere; }
.title .rank { color: var(--st-text-color, #262730); opacity: .55; font-weight: 500; }
.title a { color: var(--st-link-color, var(--st-primary-color, #1a5fb4)); text-decoration: none; }
.title a:hover, .title a:focus-visible { text-decoration: underline; }
.authors { font-size: .95rem; line-height: 1.5; }
.authors a { color: var(--st-link-color, var(--st-primary-color, #1a5fb4)); text-decoration: none; }
.authors a:hover { text-decoration: underline; }
.meta { font-size: .82rem; opacity: .75; margin-top: .1rem; }
.meta .cat { border-bottom: 1px dotted currentColor; cursor: help; }
.abs { font-size: .9rem; line-height: 1.42; margin: .2rem 0 0; display: -webkit-box;
       overflow-wrap: anywhere;
       -webkit-line-clamp: 2; line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.card.open .abs { -webkit-line-clamp: unset; line-clamp: unset; display: block; }
.actions { display: flex; flex-wrap: wrap; gap: .15rem .9rem; margin-top: .2rem; font-size: .8rem; }
.actions a, .actions button { font: inherit; color: var(--st-link-color, var(--st-primary-color, #1a5fb4));
       background: none; border: none; padding: 0; cursor: pointer; text-decoration: none; opacity: .9; }
.actions a:hover, .actions button:hover { text-decoration: underline; opacity: 1; }
.actions .on { font-weight: 600; }
.why { display: none; font-size: .82rem; opacity: .8; margin-top: .2rem; }
.card.why-open .why { display: block; }
.pages { display: flex; gap: .8rem; align-items: center; margin: .6rem 0 .2rem; font-size: .92rem; }
.pages a { color: var(--st-link-color, var(--st-primary-color, #1a5fb4)); text-decoration: none; }
.pages .current { font-weight: 700; }
.pages .off { opacity: .4; }
:focus-visible { outline: 2px solid var(--st-primary-color, #1a5fb4); outline-offset: 2px;
                 border-radius: 2px; }
"""

JS = """
export default function(component) {
  const { parentElement, data, setTriggerValue } = component;
  let root = parentElement.querySelector('.cards');
  if (!root) {
    root = document.createElement('div');
    root.className = 'cards';
    parentElement.appendChild(root);
  }
  root.innerHTML = data.html;
  const host = parentElement.host || parentElement;
  const toTop = () => {
    window.scrollTo(0, 0);
    for (let el = host; el; el = el.parentElement) { if (el.scrollTop > 0) el.scrollTop = 0; }
  };
  const onClick = (e) => {
    const act = e.target.closest('[data-act]');
    if (act) {
      const card = act.closest('.card');
      const what = act.dataset.act;
      if (what === 'abstract' || what === 'why') {
        const cls = what === 'abstract' ? 'open' : 'why-open';
        card.classList.toggle(cls);
        act.setAttribute('aria-expanded', card.classList.contains(cls) ? 'true' : 'false');
      } else {
        setTriggerValue('act', { act: what, id: card.dataset.id });
      }
      return;
    }
    const a = e.target.closest('a[data-nav]');
    if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    if (a.hasAttribute('data-top')) toTop();
    setTriggerValue('nav', a.getAttribute('href'));
  };
  const onKey = (e) => {
    const bar = e.target.closest('.actions');
    if (!bar || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
    const items = [...bar.querySelectorAll('a, button')];
    const i = items.indexOf(e.target);
    const next = items[(i + (e.key === 'ArrowRight' ? 1 : items.length - 1)) % items.length];
    items.forEach((x) => x.setAttribute('tabindex', '-1'));
    next.setAttribute('tabindex', '0');
    next.focus();
    e.preventDefault();
  };
  // Streamlit calls this function again on every rerun with the same root: assigned
  // handlers replace the previous run's (added listeners would pile up and fire N times).
  root.onclick = onClick;
  root.onkeydown = onKey;
}
"""

_CARDS = st.components.v2.component("papersift_cards", css=CSS, js=JS)

KEYS_JS = """
export default function(component) {
  const label = component.data.label;
  const box = () => document.querySelector('input[aria-label="' + CSS.escape(label) + '"]');
  if (!window.__papersiftKeys) {  // "/" focuses the search box, as on GitHub and arXiv
    window.__papersiftKeys = true;
    document.addEventListener('keydown', (e) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.composedPath()[0];
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      const input = box();
      if (!input) return;
      e.preventDefault();
      input.focus();
      input.select();
    });
    // A typed date applies on Enter, and on Tab out of its last part: Streamlit's date
    // input commits when the focus moves to an element outside it (not to nothing), so
    // move it to the page, then on Tab to the next field.
    document.addEventListener('keydown', (e) => {
      const t = e.composedPath()[0];
      const group = t && t.closest && t.closest('[data-testid="stDateInput"]');
      if (!group || t.getAttribute('role') !== 'spinbutton') return;
      const tab = e.key === 'Tab' && !e.shiftKey && t.dataset.type === 'day';
      if (e.key !== 'Enter' && !tab) return;
      e.preventDefault();
      document.body.setAttribute('tabindex', '-1');
      document.body.focus({ preventScroll: true });
      if (!tab) return;
      const next = [...document.querySelectorAll('input, button, a[href], [tabindex="0"]')]
        .find((x) => !group.contains(x) && x.offsetParent !== null
                     && (group.compareDocumentPosition(x) & Node.DOCUMENT_POSITION_FOLLOWING));
      if (next) setTimeout(() => next.focus(), 0);
    }, true);
  }
  if (component.data.focus && !window.__papersiftFocused) {  // focus on load, once
    window.__papersiftFocused = true;
    let tries = 0;
    const tryFocus = () => {
      const input = box();
      if (input && (document.activeElement === document.body || !document.activeElement)) {
        input.focus();
      } else if (!input && tries++ < 60) {
        setTimeout(tryFocus, 50);
      }
    };
    tryFocus();
  }
}
"""
_KEYS = st.components.v2.component("papersift_keys", js=KEYS_JS)


def keyboard(search_label: str, focus: bool) -> None:
    """"/" focuses the search box labelled `search_label`; with `focus`, it has the focus
    when the page loads. Typed dates apply on Enter and Tab."""
    _KEYS(key="keys", data={"label": search_label, "focus": focus}, height=0)


def esc(text: object) -> str:
    """Text for HTML: escaped, without bidirectional overrides (render.strip_bidi)."""
    return html.escape(render.strip_bidi(str(text)))


def href(state: ViewState) -> str:
    """The in-app link of a view: its URL query string."""
    return "?" + urlencode(state.to_params(), doseq=True)


def state_from_href(link: object) -> ViewState | None:
    """The view an in-app link names; None for anything that is not a plain query string
    (the value comes from the browser: untrusted)."""
    if not isinstance(link, str) or len(link) > 20_000:
        return None
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or parts.path not in ("", "/"):
        return None
    return ViewState.from_params(parse_qs(parts.query))


def link(label: str, state: ViewState, *, cls: str = "", top: bool = False, **attrs: str) -> str:
    """An in-app link to a view (escaped label); `top`: the page scrolls to its top."""
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    klass = f' class="{cls}"' if cls else ""
    return (f'<a data-nav{" data-top" if top else ""}{klass} '
            f'href="{esc(href(state))}"{extra}>{esc(label)}</a>')


def meta_html(paper: Paper, score: float | None = None, authors: bool = True,
              category: bool = True) -> str:
    """Authors +N, date, primary category (its name on hover), upvotes, score."""
    parts = []
    if authors and paper.authors:
        parts.append(esc(render.authors_line(paper.authors, limit=3)))
    if paper.published:
        parts.append(esc(paper.published))
    if category and paper.primary_category:
        name = category_name(paper.primary_category) or paper.primary_category
        parts.append(f'<span class="cat" title="{esc(name)}">'
                     f"{esc(paper.primary_category)}</span>")
    if paper.upvotes is not None:
        parts.append(f"▲ {int(paper.upvotes)}")
    if score is not None and score == score:  # NaN: no score (a list's papers)
        parts.append(f"score {score:.3f}")
    return " · ".join(parts)


def why(hit: Hit, mode: str) -> str:
    """Which retrievers found a hit, and at which rank (plain text)."""
    found = [f"{SOURCE_NAMES[name]}: rank {rank}" for name, rank in sorted(hit.sources.items())]
    text = "Found by " + "; ".join(found) + "."
    if mode == "hybrid" and set(hit.sources) == {"dense"}:
        text += " Few or no shared keywords: found by meaning alone."
    elif mode == "hybrid" and set(hit.sources) == {"bm25"}:
        text += " Not among the closest by meaning: found by its keywords."
    return text


def card_html(hit: Hit, state: ViewState, saved: bool = False, rank: bool = True) -> str:
    paper = hit.paper
    pid = paper.id
    title = render.readable_math(paper.title or pid)
    abstract = render.readable_math(paper.abstract)
    liked = pid in state.like
    actions: list[str] = []

    def tab() -> str:  # one tab stop for the toolbar: the arrow keys move along it
        return "0" if not actions else "-1"

    if abstract:
        actions.append(f'<button data-act="abstract" aria-expanded="false" tabindex="{tab()}">'
                       "Abstract</button>")
    actions.append(link("Similar", state.with_(similar=pid, paper="", page=1, view="search"),
                      top=True, title="Papers like this one", tabindex=tab()))
    actions.append(link("✓ Liked" if liked else "More like this", state.toggle_like(pid),
                        cls="on" if liked else "", title="Collect papers to find more like them",
                        tabindex=tab()))
    if state.view == "more":
        disliked = pid in state.unlike
        actions.append(link("✓ Unwanted" if disliked else "Not this", state.toggle_unlike(pid),
                            cls="on" if disliked else "", tabindex=tab()))
    actions.append(f'<button data-act="save" class="{"on" if saved else ""}" tabindex="{tab()}">'
                   f'{"✓ Saved" if saved else "Save"}</button>')
    actions.append(f'<button data-act="cite" tabindex="{tab()}">Cite</button>')
    if hit.sources:
        actions.append(f'<button data-act="why" aria-expanded="false" tabindex="{tab()}">'
                       "Why this result</button>")
    for name, url in render.paper_links(paper).items():
        actions.append(f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer" '
                       f'tabindex="{tab()}">{esc(name)}</a>')
    number = f'<span class="rank">{hit.rank}.</span> ' if rank and hit.rank else ""
    parts = [f'<article class="card" data-id="{esc(pid)}">',
             f'<h3 class="title">{number}{link(title, state.with_(paper=pid))}</h3>',
             f'<div class="meta">{meta_html(paper, hit.score)}</div>']
    if abstract:
        parts.append(f'<p class="abs">{esc(abstract)}</p>')
    parts.append(f'<div class="actions" role="toolbar" aria-label="{esc("Actions: " + title[:80])}">'
                 + "".join(actions) + "</div>")
    if hit.sources:
        parts.append(f'<div class="why">{esc(why(hit, state.mode))}</div>')
    parts.append("</article>")
    return "".join(parts)


def pages_html(state: ViewState, page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    out = ['<nav class="pages" aria-label="Pages">']
    prev = (link("← Previous", state.with_(page=page - 1), top=True, rel="prev") if page > 1
            else '<span class="off">← Previous</span>')
    out.append(prev)
    for n in range(1, pages + 1):
        out.append(f'<span class="current" aria-current="page">{n}</span>' if n == page
                   else link(str(n), state.with_(page=n), top=True, aria_label=f"Page {n}"))
    out.append(link("Next →", state.with_(page=page + 1), top=True, rel="next") if page < pages
               else '<span class="off">Next →</span>')
    out.append("</nav>")
    return "".join(out)


def page_of(hits: Sequence[Hit], state: ViewState) -> tuple[list[Hit], int, int]:
    """The hits of the state's page, the page number (clamped) and the page count."""
    pages = page_count(len(hits))
    page = min(state.page, pages)
    return list(hits[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]), page, pages


def _on_nav(key: str) -> None:
    from ui.components import go

    result = st.session_state.get(key)
    target = state_from_href(getattr(result, "nav", None))
    if target is not None:
        go(target)


def _on_act(key: str) -> None:
    result = st.session_state.get(key)
    event = getattr(result, "act", None)
    if isinstance(event, dict) and event.get("act") in ("save", "cite") and isinstance(
            event.get("id"), str):
        st.session_state.dialog = (event["act"], event["id"][:500])


def show_cards(hits: Sequence[Hit], state: ViewState, *, saved: set[str] | frozenset = frozenset(),
               key: str = "cards", page: int = 1, pages: int = 1, rank: bool = True) -> None:
    """Mount one cards element for these hits (with page links when there are pages)."""
    body = "".join(card_html(h, state, h.id in saved, rank) for h in hits)
    show_html(body + pages_html(state, page, pages), key, ids=[h.id for h in hits])


def show_html(body: str, key: str, ids: Sequence[str] = ()) -> None:
    """Mount HTML built here (every untrusted part escaped) whose in-app links and card
    actions work as described above; `ids`: the papers shown, in order (for tests)."""
    _CARDS(key=key, data={"html": body, "ids": list(ids)},
           on_nav_change=lambda: _on_nav(key), on_act_change=lambda: _on_act(key))
