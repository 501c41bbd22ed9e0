"""The app's Explore, reading-list and "more like these" pages, through AppTest."""

import re

import pytest
from streamlit.testing.v1 import AppTest

from search.lists import ReadingLists
from tests.test_app import APP, result_ids, run_app

pytestmark = pytest.mark.model


def open_view(monkeypatch, index, **params) -> AppTest:
    monkeypatch.setenv("PAPERSIFT_INDEX", str(index))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def test_explore_computes_the_map_then_shows_topics_and_a_cluster(monkeypatch, real_index_copy):
    at = open_view(monkeypatch, real_index_copy, view="explore")
    assert "no map yet" in at.info[0].value
    at.button(key="compute-map").click().run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "the map is drawn"
    topics = [b for b in at.button if b.key and b.key.startswith("cluster-")]
    assert len(topics) >= 2
    label = topics[0].label
    topics[0].click().run()
    assert at.query_params["view"] == "explore" and at.query_params["cluster"].isdigit()
    assert at.main.subheader[0].value.startswith("Topic ")
    assert label.split(" (")[0].split(". ", 1)[1] in at.main.subheader[0].value
    assert len(result_ids(at)) >= 1
    at.button(key="back-map").click().run()
    assert "cluster" not in at.query_params


def test_explore_circles_the_questions_results(monkeypatch, real_index_copy):
    from indexer.atlas import map_index

    map_index(real_index_copy)
    at = open_view(monkeypatch, real_index_copy, view="explore", q="weather forecasting")
    circled = re.search(r"circled\\: the (\d+) best results", at.main.caption[0].value)
    assert circled and 1 <= int(circled.group(1)) <= 20  # close matches only
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace.get("name", "") for trace in spec["data"]]
    assert any("results for" in n for n in names)


def test_save_to_a_new_list_then_the_list_page(monkeypatch, real_index, tmp_path):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("speech recognition").run()
    first, second = result_ids(at)[:2]
    at.text_input(key=f"newlist-1-{first}").input("Speech").run()
    assert not at.exception, at.exception
    at.button(key=f"save-2-{second}-0").click().run()
    store = ReadingLists(tmp_path / "lists.sqlite")
    assert [i.paper.id for i in store.items("Speech")] == [first, second]
    at.button(key="nav-lists").click().run()
    at.button(key="list-0").click().run()
    assert at.query_params["list"] == "Speech"
    assert [b.key for b in at.button if b.key and b.key.startswith("li-open-")] == [
        "li-open-1", "li-open-2"]
    assert "Recommended for this list" in [s.value for s in at.main.subheader]
    recs = result_ids(at)
    assert len(recs) == 10 and not {first, second} & set(recs)
    at.button(key="li-remove-1").click().run()
    assert [i.paper.id for i in store.items("Speech")] == [second]
    at.button(key="delete-list").click().run()
    assert store.lists() == []


def test_more_like_these_collects_likes_and_unlikes(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("graph neural networks").run()
    first, second = result_ids(at)[:2]
    at.button(key=f"like-1-{first}").click().run()
    at.button(key=f"like-2-{second}").click().run()
    assert at.query_params["like"] == [first, second]
    at.button(key="nav-more").click().run()
    assert at.query_params["view"] == "more"
    assert at.main.subheader[0].value == "More like 2 papers"
    recs = result_ids(at)
    assert len(recs) == 20 and not {first, second} & set(recs)
    at.button(key=f"unlike-1-{recs[0]}").click().run()
    assert at.query_params["unlike"] in ([recs[0]], recs[0])
    assert recs[0] not in result_ids(at)
    at.button(key="clear-like").click().run()
    assert "like" not in at.query_params
