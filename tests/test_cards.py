"""The result cards' HTML (ui/cards.py): links, escaping, tab stops, page links, and the
link -> view parsing the browser's clicks go through."""

import html
import re
from html.parser import HTMLParser

from indexer.records import Paper
from search import Hit
from ui import cards
from ui.state import ViewState

HOSTILE = "<script>alert(1)</script> [x](javascript:alert(1)) \" onmouseover=\"alert(1)"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def hit(pid="2401.00001", title="Diffusion distillation in one step", rank=1, **kw) -> Hit:
    paper = Paper(id=pid, title=title, abstract=kw.pop("abstract", "We distil a model. " * 30),
                  authors=kw.pop("authors", ("Ada Lovelace", "Alan Turing", "Grace Hopper",
                                             "Edsger Dijkstra", "Barbara Liskov")),
                  categories=("cs.LG", "cs.CV"), primary_category="cs.LG",
                  published="2025-05-01", **kw)
    return Hit(rank=rank, score=0.61234, paper=paper, sources={"dense": 1, "bm25": 4})


def test_title_is_a_real_link_to_the_paper_page_keeping_the_view():
    state = ViewState(query="one step diffusion", categories=("cs.LG",), page=2)
    tags = Tags(cards.card_html(hit(), state)).tags
    anchors = [a for t, a in tags if t == "a"]
    title = anchors[0]
    assert "data-nav" in title
    assert title["href"] == "?q=one+step+diffusion&paper=2401.00001&cat=cs.LG&page=2"
    assert cards.state_from_href(title["href"]) == state.with_(paper="2401.00001")


def test_meta_line_authors_plus_n_category_name_on_hover_and_score():
    text = cards.meta_html(hit().paper, 0.61234)
    assert text.startswith("Ada Lovelace, Alan Turing, Grace Hopper +2 more · 2025-05-01 · ")
    assert '<span class="cat" title="Machine Learning">cs.LG</span>' in text
    assert text.endswith("score 0.612")
    assert "▲" not in text
    assert "▲ 42" in cards.meta_html(hit(upvotes=42).paper)
    assert "score" not in cards.meta_html(hit().paper, float("nan"))  # no score to show


def test_hostile_text_is_escaped_everywhere_and_never_a_link():
    bad = hit(pid="2401.00002", title=HOSTILE, abstract=HOSTILE, authors=(HOSTILE,),
              url="javascript:alert(1)")
    body = cards.card_html(bad, ViewState(query=HOSTILE))
    parsed = Tags(body)
    assert [t for t, _ in parsed.tags if t in ("script", "img")] == []
    assert all("onmouseover" not in a for _, a in parsed.tags)
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert all(h.startswith("?") or h.startswith("https://arxiv.org/") for h in hrefs), hrefs
    assert HOSTILE in "".join(parsed.text)  # shown as the text it is
    assert html.escape(HOSTILE) in body


def test_each_card_has_two_tab_stops_title_and_toolbar():
    body = cards.card_html(hit(), ViewState(query="q"))
    tags = Tags(body).tags
    focusable = [a for t, a in tags if t in ("a", "button") and a.get("tabindex") != "-1"]
    assert len(focusable) == 2
    assert focusable[0]["href"].endswith("paper=2401.00001")  # the title first
    toolbar = re.search(r'<div class="actions".*?</div>', body).group(0)
    labels = [x for x in Tags(toolbar).text if x.strip()]
    assert labels == ["Abstract", "Similar", "More like this", "Save", "Cite",
                      "Why this result", "arXiv", "PDF"]


def test_actions_link_to_their_views():
    state = ViewState(query="q", like=("2401.00009",))
    anchors = {a.get("title", ""): a["href"] for t, a in Tags(cards.card_html(hit(), state)).tags
               if t == "a" and "data-nav" in a}
    assert cards.state_from_href(anchors["Papers like this one"]).similar == "2401.00001"
    liked = cards.state_from_href(anchors["Collect papers to find more like them"])
    assert liked.like == ("2401.00009", "2401.00001")
    saved = cards.card_html(hit(), state, saved=True)
    assert "✓ Saved" in saved and ">Save<" not in saved


def test_page_links_number_every_page_and_scroll_to_the_top():
    state = ViewState(query="q", page=2)
    body = cards.pages_html(state, 2, 5)
    anchors = [a for t, a in Tags(body).tags if t == "a"]
    pages = [cards.state_from_href(a["href"]).page for a in anchors]
    assert pages == [1, 1, 3, 4, 5, 3]  # previous, 1, (2 is the current), 3, 4, 5, next
    assert all("data-top" in a for a in anchors)
    assert cards.pages_html(state, 1, 1) == ""
    assert '<span class="off">Next →</span>' in cards.pages_html(state, 5, 5)


def test_links_from_the_browser_are_untrusted():
    assert cards.state_from_href("https://evil.example/?paper=x") is None
    assert cards.state_from_href("//evil.example/?q=x") is None
    assert cards.state_from_href("/other/path?q=x") is None
    assert cards.state_from_href(None) is None
    assert cards.state_from_href(["?q=x"]) is None
    odd = cards.state_from_href("?paper=a%00b&page=abc&sort=drop+table&cat=a%20b")
    assert odd == ViewState()  # malformed values dropped, as from any URL
    assert cards.state_from_href("?q=x&feed=trending") == ViewState(query="x", feed="trending")


def test_any_stored_id_round_trips_through_its_link():
    for pid in ("weird id with spaces & ampersand?x=1#frag", 'x">\u2039img', "L" * 250,
                "10.1002/(SICI)1097-4636(199601)30:1<1::AID-JBM1>3.0.CO;2-Y"):
        title = [a for t, a in Tags(cards.card_html(hit(pid=pid), ViewState())).tags
                 if t == "a"][0]
        assert cards.state_from_href(title["href"]).paper == pid


def test_bidirectional_overrides_cannot_reverse_a_card():
    spoof = "RTL \u202egnp.exe\u202c report"
    body = cards.card_html(hit(title=spoof, authors=("\u2067evil author\u2069",)), ViewState())
    assert "\u202e" not in body and "\u2067" not in body and "\u2069" not in body
    assert "RTL gnp.exe report" in body and "evil author" in body
