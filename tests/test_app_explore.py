"""The app's Explore, reading-list and "more like these" pages, through AppTest."""

import base64
import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from indexer.atlas import map_index
from indexer.build import build_index
from search.lists import ReadingLists
from tests.conftest import BUNDLED, write_jsonl
from tests.test_app import APP, all_markdown, follow, links, result_ids, run_app
from ui.render import escape_md

pytestmark = pytest.mark.model


def open_view(monkeypatch, index, **params) -> AppTest:
    monkeypatch.setenv("PAPERSIFT_INDEX", str(index))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def map_spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def values(array) -> list:
    """A plotly array from the figure JSON: a list, or a typed array in base64."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def strings(node) -> list[str]:
    """Every string in a JSON tree."""
    if isinstance(node, str):
        return [node]
    items = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    return [s for item in items for s in strings(item)]


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
    size = label.rsplit(" (", 1)[1].rstrip(")")  # under 100: the results' caption counts them
    captions = " ".join(c.value for c in at.main.caption)
    assert len(re.findall(rf"\b{size}\b", captions)) == 1, captions
    at.button(key="back-map").click().run()
    assert "cluster" not in at.query_params


def test_explore_circles_the_questions_results(monkeypatch, real_index_copy):
    map_index(real_index_copy)
    at = open_view(monkeypatch, real_index_copy, view="explore")
    at.text_input(key="w_query").input("weather forecasting").run()  # the box on Explore
    assert at.query_params["view"] == "explore" and at.query_params["q"] == "weather forecasting"
    circled = re.search(r"circled\\: the (\d+) best results", at.main.caption[0].value)
    assert circled and 1 <= int(circled.group(1)) <= 20  # close matches only
    spec = map_spec(at)
    assert not any(t.get("name") == "outside the filters" for t in spec["data"])  # no filter
    ring = [t for t in spec["data"] if t.get("name", "").startswith("results for")]
    assert len(ring) == 1 and len(ring[0]["customdata"]) == int(circled.group(1))
    assert [a["text"] for a in spec["layout"]["annotations"]] == [
        str(i) for i in range(1, int(circled.group(1)) + 1)]


def test_explore_follows_the_question_and_the_filters(monkeypatch, real_index_copy, bundled_300):
    map_index(real_index_copy)
    records = [json.loads(line) for line in bundled_300.read_text(encoding="utf-8").splitlines()]
    in_lg = {r["id"] for r in records if "cs.LG" in r["categories"]}
    assert 50 < len(in_lg) < 200
    at = open_view(monkeypatch, real_index_copy, view="explore", q="weather forecasting",
                   cat="cs.LG")
    caption = at.main.caption[0].value
    assert escape_md(f"{len(in_lg)} pass the filters, in colour") in caption
    spec = map_spec(at)
    topics = [t for t in spec["data"] if t.get("customdata") and t.get("legendgroup") != "results"]
    assert {pid for t in topics for pid in t["customdata"]} == in_lg  # only cs.LG in colour
    faint = [t for t in spec["data"] if t.get("name") == "outside the filters"]
    assert len(faint) == 1 and len(values(faint[0]["x"])) == len(records) - len(in_lg)
    ring = [t for t in spec["data"] if t.get("name", "").startswith("results for")][0]
    circled = int(re.search(r"circled\\: the (\d+) best results", caption).group(1))
    assert 1 <= circled == len(ring["customdata"]) and set(ring["customdata"]) <= in_lg
    assert [a["text"] for a in spec["layout"]["annotations"]] == [
        str(i) for i in range(1, circled + 1)]
    topic_counts = [re.search(r"\((\d+) of (\d+)\)$", b.label) for b in at.button
                    if b.key and b.key.startswith("cluster-")]
    assert all(topic_counts) and sum(int(m.group(1)) for m in topic_counts) == len(in_lg)
    assert sum(int(m.group(2)) for m in topic_counts) == len(records)


def test_hostile_titles_and_question_are_escaped_in_the_map(monkeypatch, tmp_path, real_encoder):
    titles = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
    hostile = [{"id": f"2401.0000{i}", "title": t, "abstract": f"hostile alert {t}",
                "categories": ["cs.CR"]} for i, t in enumerate(titles)]
    corpus = write_jsonl(tmp_path / "h.jsonl", BUNDLED.read_text(encoding="utf-8").splitlines()[:40]
                         + hostile)
    build_index([corpus], tmp_path / "ix", real_encoder, with_map=True)
    at = open_view(monkeypatch, tmp_path / "ix", view="explore", q="<b>hostile</b> alert")
    text = strings(map_spec(at))
    assert not [s for s in text if "<script" in s or "<img" in s or "<b>" in s]
    hovers = [s for s in text if "&lt;script&gt;alert(1)&lt;/script&gt;" in s]
    assert len(hovers) >= 2  # among the topic's hover titles and the circled results
    assert any("results for “&lt;b&gt;hostile&lt;/b&gt; alert”" in s for s in text)


def test_save_to_a_new_list_then_the_list_page(monkeypatch, real_index, tmp_path):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("speech recognition").run()
    first, second = result_ids(at)[:2]
    at.session_state["dialog"] = ("save", first)  # what a card's Save button asks for
    at.run()
    at.text_input(key="newlist-dialog").input("Speech").run()
    assert not at.exception, at.exception
    at.session_state["dialog"] = ("save", second)
    at.run()
    at.button(key="save-dialog-0").click().run()
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
    at.button(key="delete-list").click().run()  # asks first: nothing is deleted yet
    assert [rl.name for rl in store.lists()] == ["Speech"]
    assert "Really delete the list **Speech** and its 1 saved paper?" in all_markdown(at)
    at.button(key="delete-list-cancel").click().run()
    assert [rl.name for rl in store.lists()] == ["Speech"]
    assert not any(b.key == "delete-list-confirm" for b in at.button)
    at.button(key="delete-list").click().run()
    at.button(key="delete-list-confirm").click().run()
    assert store.lists() == []
    assert "list" not in at.query_params


def test_bibtex_import_names_the_entries_it_could_not_match(monkeypatch, real_index, tmp_path,
                                                              bundled_300):
    known = json.loads(bundled_300.read_text(encoding="utf-8").splitlines()[0])
    unknown = [("hostile", "<script>alert(1)</script> [x](javascript:alert(1))")] + [
        (f"nowhere{i}", f"A paper on nothing number {i}") for i in range(1, 12)]
    bib = f"@article{{known, title={{{known['title']}}}}}\n" + "".join(
        f"@article{{{key}, title={{{title}}}}}\n" for key, title in unknown)
    at = run_app(monkeypatch, real_index)
    at.button(key="nav-lists").click().run()
    at.file_uploader(key="bib-upload").upload("refs.bib", bib.encode(), "text/plain").run()
    at.button(key="bib-import").click().run()
    assert not at.exception, at.exception
    assert [i.paper.id for i in ReadingLists(tmp_path / "lists.sqlite").items("Imported")] == [
        known["id"]]
    assert escape_md("13 entries, 1 found in the index, 1 new in Imported") in at.success[0].value
    missing = at.warning[0].value
    assert missing.startswith("Not in this index \\(12\\)\\: hostile \\(")
    assert escape_md("<script>alert(1)</script> [x](javascript:alert(1))") in missing
    assert "nowhere9" in missing and "nowhere10" not in missing
    assert missing.endswith("and 2 more\\.")


def action(at, text: str) -> str:
    """The href of the first card action link with this text."""
    return next(href for label, href in links(at) if label == text)


def test_more_like_these_collects_likes_and_unlikes(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="w_query").input("graph neural networks").run()
    first, second = result_ids(at)[:2]
    follow(at, action(at, "More like this"))  # the first card's
    follow(at, action(at, "More like this"))  # the second's: the first now says "✓ Liked"
    assert at.query_params["like"] == [first, second]
    at.button(key="nav-more").click().run()
    assert at.query_params["view"] == "more"
    assert at.main.subheader[0].value == "More like 2 papers"
    recs = result_ids(at)
    assert len(recs) == 20 and not {first, second} & set(recs)
    follow(at, action(at, "Not this"))
    assert at.query_params["unlike"] in ([recs[0]], recs[0])
    assert recs[0] not in result_ids(at)
    at.button(key="clear-like").click().run()
    assert "like" not in at.query_params
