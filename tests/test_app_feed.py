"""The app's home feed, trending, honest sorting, the paper page's Cite and author links, the
Save and Cite dialogs, and "Fetch and add" for an arXiv id the index lacks (AppTest, real
model)."""

import datetime as dt
import json

import pytest

from indexer.build import build_index
from search import Searcher
from search.lists import ReadingLists
from tests.conftest import write_jsonl
from tests.feeds import free_port, local_server
from tests.test_add_arxiv import FakeArxiv
from tests.test_app import cards, follow, links, result_ids, run_app
from ui.render import escape_md

pytestmark = pytest.mark.model

NEWEST = "2026-03-10"


def voted_papers() -> list[dict]:
    """Papers over three weeks with upvotes (as Hugging Face Papers has them)."""
    out = []
    for i in range(30):
        day = dt.date(2026, 3, 10) - dt.timedelta(days=i % 21)
        out.append({"id": f"2603.{i:05d}", "title": f"Paper {i} on sparse attention kernels",
                    "abstract": f"We study sparse attention kernels, variant {i}, for long "
                                "context language models on GPUs.",
                    "authors": ["Ada Lovelace", f"Author {i}"], "categories": [
                        "cs.CL" if i % 2 else "cs.LG"], "published": day.isoformat(),
                    "upvotes": (i * 7) % 31})
    return out


@pytest.fixture(scope="module")
def voted_index(tmp_path_factory, real_encoder):
    tmp = tmp_path_factory.mktemp("voted")
    root = tmp / "index"
    build_index([write_jsonl(tmp / "p.jsonl", voted_papers())], root, real_encoder)
    return root


def test_home_feed_lists_the_newest_papers_and_filters_apply(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    lookup = Searcher(real_index)
    ids = result_ids(at)
    assert len(ids) == 20
    dates = [lookup.paper(i).published for i in ids]
    assert dates == sorted(dates, reverse=True)
    assert dates[0] == lookup.date_range[1]
    assert any(c.value.startswith("The 100 newest papers · 1–20 of 100") for c in at.caption)
    assert not any(b.key == "feed-trending" for b in at.button)  # no upvotes in this index
    assert "Upvotes" not in at.radio(key="w_sort").options

    at.query_params.update({"q": "language models", "sort": "upvotes"})  # from another index
    at.run()
    assert at.radio(key="w_sort").value == "relevance"
    assert not any("upvotes first" in c.value for c in at.caption)
    assert any(c.value.startswith("Best match first") for c in at.caption)

    at.query_params.clear()
    at.query_params.update({"sort": "newest", "cat": "cs.CL"})  # the URL the issue names
    at.run()
    ids = result_ids(at)
    assert ids and all("cs.CL" in lookup.paper(i).categories for i in ids)
    assert any("matching the filters" in c.value for c in at.caption)


def test_trending_is_the_weeks_most_upvoted_and_upvotes_sorting_is_offered(monkeypatch,
                                                                          voted_index):
    at = run_app(monkeypatch, voted_index)
    assert at.button(key="feed-trending")
    assert "Upvotes" in at.radio(key="w_sort").options
    at.button(key="feed-trending").click().run()
    assert at.query_params["feed"] == "trending"
    lookup = Searcher(voted_index)
    papers = [lookup.paper(i) for i in result_ids(at)]
    week = [p for p in voted_papers() if p["published"] >= "2026-03-04"]
    assert len(papers) == len(week) == 14
    assert [p.upvotes for p in papers] == sorted((p["upvotes"] for p in week), reverse=True)
    assert any("Most upvoted since 2026-03-04" in c.value for c in at.caption)
    body = cards(at)["html"]
    assert f"▲ {papers[0].upvotes}" in body


def test_sorting_reorders_only_close_matches(monkeypatch, voted_index):
    at = run_app(monkeypatch, voted_index)
    at.multiselect(key="w_cats").select("cs.CL").run()  # 15 papers: one page
    at.text_input(key="w_query").input("sparse attention kernels for long context").run()
    relevant = set(result_ids(at))
    assert len(relevant) == 15
    at.radio(key="w_sort").set_value("upvotes").run()
    ids = result_ids(at)
    assert set(ids) == relevant  # the same papers, reordered
    lookup = Searcher(voted_index)
    votes = [lookup.paper(i).upvotes for i in ids]
    assert votes == sorted(votes, reverse=True)
    at.text_input(key="w_query").input("qqzzx vvkkw").run()  # nothing close: nothing to sort
    assert result_ids(at) == []
    assert "No close matches" in at.info[0].value


def test_an_empty_date_range_names_the_dates_the_index_covers(monkeypatch, voted_index):
    at = run_app(monkeypatch, voted_index)
    at.query_params.update({"since": "2026-03-11"})
    at.run()
    assert result_ids(at) == []
    assert "This index covers 2026-02-18 to 2026-03-10" in at.info[0].value
    since = at.date_input(key="w_since")
    assert since.value == dt.date(2026, 3, 11)  # outside the index, still shown as asked
    assert since.max == dt.date(2026, 3, 11)  # the calendar opens at the index's end or the ask
    at.query_params.clear()
    at.run()
    assert at.date_input(key="w_until").max == dt.date(2026, 3, 10)


def test_paper_page_cite_author_links_and_show_more(monkeypatch, voted_index):
    at = run_app(monkeypatch, voted_index)
    at.query_params.update({"paper": "2603.00003"})
    at.run()
    bib = "\n".join(c.value for c in at.code)
    assert "@misc{" in bib and "eprint = {2603.00003}" in bib and "Sparse" not in bib
    authors = links(at, "paper-head")
    assert [t for t, _ in authors] == ["Ada Lovelace", "Author 3"]
    follow(at, authors[0][1])  # an author's name: that author's papers, newest first
    assert at.query_params["author"] == '"Ada Lovelace"' and "paper" not in at.query_params
    assert len(result_ids(at)) == 20

    at.query_params.clear()
    at.query_params.update({"paper": "2603.00003"})
    at.run()
    related = result_ids(at, "related")
    assert len(related) == 10
    assert 'data-act="save"' in cards(at, "related")["html"]  # related items carry Save/Similar
    at.button(key="more-related").click().run()
    assert at.query_params["similar"] == "2603.00003"
    assert len(result_ids(at)) == 20 and set(related) <= set(result_ids(at))


def test_save_and_cite_dialogs(monkeypatch, voted_index, tmp_path):
    monkeypatch.setenv("PAPERSIFT_LISTS", str(tmp_path / "lists.sqlite"))
    ReadingLists(tmp_path / "lists.sqlite").create("Thesis <b>2</b>")
    at = run_app(monkeypatch, voted_index)
    first = result_ids(at)[0]
    at.session_state["dialog"] = ("cite", first)  # what a card's Cite button asks for
    at.run()
    assert any(f"eprint = {{{first}}}" in c.value for c in at.code)
    at.session_state["dialog"] = ("save", first)
    at.run()
    at.button(key="save-dialog-0").click().run()
    assert [i.paper.id for i in ReadingLists(tmp_path / "lists.sqlite").items("Thesis <b>2</b>")] == [
        first]
    assert '✓ Saved</button>' in cards(at)["html"].split("</article>")[0]
    at.session_state["dialog"] = ("save", "no-such-paper")  # a stale request: nothing opens
    at.run()
    assert not at.exception


def test_an_arxiv_id_not_in_the_index_can_be_fetched_and_added(monkeypatch, real_index_copy,
                                                              real_encoder):
    monkeypatch.setattr("ui.clikit.make_encoder", lambda *a, **k: real_encoder)
    monkeypatch.setattr("indexer.arxiv.ARXIV_SPACING", 0.0)
    monkeypatch.setenv("PAPERSIFT_ARXIV_URL", f"http://127.0.0.1:{free_port()}/api/query")
    at = run_app(monkeypatch, real_index_copy)  # offline: nothing listens there
    at.text_input(key="w_query").input("arXiv:1309.4668").run()
    at.button(key="fetch-one").click().run()
    assert at.error[0].value == escape_md(
        "Could not add 1309.4668: arXiv cannot be reached (offline?). Nothing was changed.")
    with local_server(FakeArxiv) as url:
        monkeypatch.setenv("PAPERSIFT_ARXIV_URL", f"{url}/status/503/api/query")
        at = run_app(monkeypatch, real_index_copy)
        at.text_input(key="w_query").input("https://arxiv.org/abs/1309.4668").run()
        assert "not in this index" in at.warning[0].value
        assert "[abstract on arxiv\\.org](https://arxiv.org/abs/1309.4668)" in at.warning[0].value
        before = json.dumps(sorted(p.name for p in real_index_copy.iterdir()))
        at.button(key="fetch-one").click().run()  # arXiv says "slow down": one line, no change
        assert escape_md("Could not add 1309.4668: ") in at.error[0].value
        assert "HTTP 503" in at.error[0].value
        assert "\n" not in at.error[0].value
        assert json.dumps(sorted(p.name for p in real_index_copy.iterdir())) == before

        monkeypatch.setenv("PAPERSIFT_ARXIV_URL", f"{url}/api/query")
        at.button(key="fetch-one").click().run()
        assert not at.exception, at.exception
        assert at.query_params["paper"] == "1309.4668"
        assert "Electron cloud observations" in at.header[0].value


def test_an_index_damaged_under_the_running_app_is_one_error_line(monkeypatch,
                                                                   real_index_copy):
    from indexer.store import current_generation

    at = run_app(monkeypatch, real_index_copy)
    first = result_ids(at)[0]
    db = current_generation(real_index_copy) / "papers.sqlite"
    db.write_bytes(db.read_bytes()[:4096])  # truncated by a crash or a bad copy
    at.query_params.update({"paper": first})
    at.run()
    assert not at.exception, at.exception
    assert escape_md("papersift repair --index") in at.error[0].value
