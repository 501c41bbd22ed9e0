"""The Streamlit app through streamlit.testing.v1.AppTest, with the real model."""

import datetime as dt
import html
import json
import re
from html.parser import HTMLParser
from urllib.parse import quote_plus

import pytest
from streamlit.testing.v1 import AppTest

from indexer.build import build_index
from search import searcher as searcher_module
from tests.conftest import ROOT, write_jsonl
from ui.render import escape_md

APP = str(ROOT / "ui" / "app.py")
pytestmark = pytest.mark.model


def run_app(monkeypatch, index) -> AppTest:
    monkeypatch.setenv("PAPERSIFT_INDEX", str(index))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def all_markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _elements(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _elements(child)


def cards(at, key: str = "cards") -> dict:
    """The data of a cards element (ui/cards.py): its HTML and the paper ids in order."""
    for el in _elements(at.main):
        proto = getattr(el, "proto", None)
        if getattr(proto, "component_name", "") == "papersift_cards" and proto.id.endswith(
                "-" + key):
            return json.loads(proto.json)
    return {"html": "", "ids": []}


def result_ids(at, key: str = "cards") -> list[str]:
    """Paper ids of the result cards, in rank order."""
    return cards(at, key)["ids"]


class _Anchors(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []  # (text, attributes)
        self._open: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = {**dict(attrs), "text": ""}

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            self.found.append((self._open.pop("text"), self._open))
            self._open = None


def links(at, key: str = "cards") -> list[tuple[str, str]]:
    """(text, href) of every in-app link of a cards element, in page order."""
    return [(t, a["href"]) for t, a in _Anchors(cards(at, key)["html"]).found if "data-nav" in a]


def follow(at, href: str) -> None:
    """What a click on an in-app link does: the view moves to the link's query string."""
    from ui.cards import state_from_href

    target = state_from_href(href)
    assert target is not None, href
    at.query_params.clear()
    at.query_params.update(target.to_params())
    at.run()
    assert not at.exception, at.exception


def open_result(at, paper_id: str, key: str = "cards") -> None:
    """Click a result's title."""
    hrefs = [h for _, h in links(at, key) if f"paper={quote_plus(paper_id)}" in h
             and "similar=" not in h]
    follow(at, hrefs[0])


def test_search_shows_ranked_titles_and_puts_the_query_in_the_url(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("scaling laws for weight decay and batch size").run()
    assert not at.exception
    ids = result_ids(at)
    assert ids[0] == "2505.13738" and 1 <= len(ids) <= 20  # close matches only
    title = "Power Lines: Scaling Laws for Weight Decay and Batch Size in LLM Pre-training"
    found = links(at)
    assert found[0] == (title, "?q=scaling+laws+for+weight+decay+and+batch+size&paper=2505.13738")
    body = cards(at)["html"]
    assert '<span class="rank">1.</span>' in body
    assert '<span class="cat" title="Machine Learning">cs.LG</span>' in body
    assert 'href="https://arxiv.org/pdf/2505.13738"' in body
    assert at.query_params["q"] == "scaling laws for weight decay and batch size"
    assert any("Best match first · " in c.value for c in at.caption)


def test_pages_of_twenty_up_to_one_hundred(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("language models").run()
    first = result_ids(at)
    follow(at, dict(links(at))["Next →"])
    second = result_ids(at)
    assert at.query_params["page"] == "2"
    assert len(second) == 20 and not set(first) & set(second)
    assert '<span class="rank">21.</span>' in cards(at)["html"]
    assert [t for t, _ in links(at)][-6:] == ["← Previous", "1", "3", "4", "5", "Next →"]
    assert any("21–40 of " in c.value for c in at.caption), [c.value for c in at.caption]
    follow(at, dict(links(at))["5"])
    assert "Next →" not in dict(links(at))  # the last page
    assert 1 <= len(result_ids(at)) <= 20 and '<span class="rank">81.</span>' in cards(at)["html"]


def test_each_filter_acts_inside_retrieval(monkeypatch, real_index):
    from search import Searcher

    lookup = Searcher(real_index)
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("retrieval augmented generation").run()
    at.multiselect(key="w_cats").select("cs.CV").run()
    at.button(key="everything").click().run()  # past the relevance floor: a full page
    assert at.query_params["all"] == "1"
    ids = result_ids(at)
    assert len(ids) == 20  # still a full page: the filter is inside retrieval
    assert all("cs.CV" in lookup.paper(i).categories for i in ids)
    assert at.query_params["cat"] == "cs.CV"

    at.multiselect(key="w_cats").unselect("cs.CV").run()
    at.date_input(key="w_since").set_value(dt.date(2025, 5, 1)).run()
    at.date_input(key="w_until").set_value(dt.date(2025, 5, 31)).run()
    dates = [lookup.paper(i).published for i in result_ids(at)]
    assert dates and all("2025-05-01" <= d <= "2025-05-31" for d in dates)
    assert (at.query_params["since"], at.query_params["until"]) == ("2025-05-01", "2025-05-31")

    at.radio(key="w_sort").set_value("newest").run()
    dates = [lookup.paper(i).published for i in result_ids(at)]
    assert dates == sorted(dates, reverse=True)

    at.text_input(key="w_author").input("Gao").run()
    ids = result_ids(at)
    assert ids and all(any("gao" in a.lower() for a in lookup.paper(i).authors) for i in ids)

    at.text_input(key="w_author").input("Nobody Zzyzx").run()
    assert result_ids(at) == []
    assert "No papers match the filters" in at.info[0].value
    assert "This index covers 20" in at.info[0].value  # the dates are set: say what it holds


def test_paper_page_and_walk_through_related_work(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("chunking documents for retrieval augmented generation").run()
    first = result_ids(at)[0]
    open_result(at, first)
    assert at.query_params["paper"] == first
    assert [s.value for s in at.main.subheader] == ["Related work"]
    related = result_ids(at, "related")
    assert len(related) == 10 and first not in related
    step = related[0]
    open_result(at, step, "related")
    assert at.query_params["paper"] == step
    assert step != first
    at.button(key="back").click().run()
    assert "paper" not in at.query_params
    assert result_ids(at)[0] == first  # the same results again


def test_similar_lists_papers_like_one(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("rain forecasting").run()
    first = result_ids(at)[0]
    follow(at, next(h for t, h in links(at) if t == "Similar"))  # the first card's
    assert at.query_params["similar"] == first
    assert "Papers similar to" in at.main.subheader[0].value
    assert first not in result_ids(at) and len(result_ids(at)) == 20


def test_url_reproduces_the_view(monkeypatch, real_index):
    monkeypatch.setenv("PAPERSIFT_INDEX", str(real_index))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"q": "sign language", "cat": ["cs.CV"], "sort": "newest",
                            "since": "2025-03-01"})
    at.run()
    assert not at.exception
    assert at.text_input(key="w_query").value == "sign language"
    assert at.multiselect(key="w_cats").value == ["cs.CV"]
    assert at.radio(key="w_sort").value == "newest"
    assert at.date_input(key="w_since").value == dt.date(2025, 3, 1)
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params.update(at.query_params)
    again.run()
    assert result_ids(again) == result_ids(at) != []


def test_arxiv_url_opens_the_paper_and_abstract_finds_it(monkeypatch, real_index):
    from search import Searcher

    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("https://arxiv.org/abs/2505.13738v2").run()
    assert "Power Lines" in at.header[0].value
    assert [s.value for s in at.main.subheader] == ["Related work"]

    abstract = Searcher(real_index).paper("2504.19754").abstract
    at.text_input(key="w_query").input(abstract).run()
    assert result_ids(at)[0] == "2504.19754"
    assert any("Papers like the pasted abstract" in c.value for c in at.caption)

    at.text_input(key="w_query").input("arXiv:2101.00001").run()
    assert "not in this index" in at.warning[0].value


def test_no_index_explains_how_to_build(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path / "nothing")
    assert "papersift demo" in at.info[0].value
    assert "papersift build" in at.info[0].value


def test_index_of_another_model_shows_the_store_error(monkeypatch, toy_index):
    at = run_app(monkeypatch, toy_index)
    assert "built with model fake/bag-of-words" in at.error[0].value


def test_hostile_titles_are_shown_as_text(monkeypatch, tmp_path, real_encoder):
    titles = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
              "[x](javascript:alert(1))", "costs $5 and $6"]
    records = [{"id": f"2401.0000{i}", "title": t, "abstract": f"hostile {t} **bold**",
                "url": "javascript:alert(1)"} for i, t in enumerate(titles)]
    build_index([write_jsonl(tmp_path / "h.jsonl", records)], tmp_path / "ix", real_encoder)
    at = run_app(monkeypatch, tmp_path / "ix")
    at.text_input(key="w_query").input("hostile alert").run()
    if any(b.key == "everything" for b in at.button):
        at.button(key="everything").click().run()  # every paper, close or not
    body = cards(at)["html"]
    for t in titles:
        assert html.escape(t) in body
    assert "<script" not in body and "<img" not in body
    anchors = _Anchors(body).found
    assert {t for t, _ in anchors} >= set(titles)  # each title is its link's text
    assert all(a["href"].startswith(("?", "https://arxiv.org/")) for _, a in anchors)
    open_result(at, "2401.00000")  # the paper page too
    text = all_markdown(at) + cards(at, "paper-head")["html"]
    assert escape_md(titles[0]) in at.header[0].value
    assert "javascript:" not in text.replace("javascript\\:", "")


def test_engine_loads_once_across_reruns(monkeypatch, real_index_copy):
    calls = []
    original = searcher_module.Searcher.__init__

    def counting(self, *args, **kwargs):
        calls.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(searcher_module.Searcher, "__init__", counting)
    at = run_app(monkeypatch, real_index_copy)
    at.text_input(key="w_query").input("rain").run()
    at.text_input(key="w_query").input("sign language").run()
    AppTest.from_file(APP, default_timeout=60).run()  # a second browser session
    assert len(calls) == 1


def test_match_mode_and_why_this_result(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("weight decay batch size scaling").run()
    whys = re.findall(r'<div class="why">(.*?)</div>', cards(at)["html"])
    assert whys and whys[0].startswith("Found by")
    assert "keywords (BM25): rank 1" in whys[0]
    at.radio(key="w_mode").set_value("bm25").run()
    assert at.query_params["mode"] == "bm25"
    assert result_ids(at)[0] == "2505.13738"
    first_why = re.findall(r'<div class="why">(.*?)</div>', cards(at)["html"])[0]
    assert "meaning" not in first_why


def test_a_running_app_serves_every_update_without_a_restart(monkeypatch, real_index_copy,
                                                             real_encoder, tmp_path):
    from indexer.update import update_index

    at = run_app(monkeypatch, real_index_copy)
    served = []
    for batch in range(3):
        paper = {"id": f"2611.{batch:05d}", "title": f"Counting quokkas from drone photos, "
                 f"survey {batch}", "abstract": "We count quokka populations on Rottnest "
                 "Island from aerial drone images with a detector trained on few labels.",
                 "published": "2026-11-01"}
        update_index([write_jsonl(tmp_path / f"u{batch}.jsonl", [paper])], real_index_copy,
                     real_encoder)
        at.text_input(key="w_query").input(f"quokka drone census {batch}").run()
        assert not at.exception, at.exception
        assert paper["id"] in result_ids(at)[:3]
        served.append(paper["id"])
    assert set(served) <= set(result_ids(at))
    gens = [p for p in real_index_copy.iterdir() if p.name.startswith("gen-")]
    assert len(gens) <= 2  # superseded generations are freed once no session holds them
