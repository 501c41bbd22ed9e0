"""The Streamlit app through streamlit.testing.v1.AppTest, with the real model."""

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


def test_search_shows_ranked_titles_and_similar(monkeypatch, real_index):
    at = run_app(monkeypatch, real_index)
    at.text_input(key="query").input("scaling laws for weight decay and batch size").run()
    assert not at.exception
    text = all_markdown(at)
    assert "#### 1. [" + escape_md("Power Lines: Scaling Laws for Weight Decay and Batch Size "
                                   "in LLM Pre-training") + "](https://arxiv.org/abs/2505.13738)" in text
    assert ":blue-badge[" in text
    similar = [b for b in at.button if b.key and b.key.startswith("similar-1-")]
    similar[0].click().run()
    assert any("Papers similar to" in s.value for s in at.subheader)
    assert len([b for b in at.button if b.key and b.key.startswith("similar-")]) == 20
    back = [b for b in at.button if b.label.startswith("← Back")]
    back[0].click().run()
    assert not at.subheader
    assert at.text_input(key="query").value.startswith("scaling laws")


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
    at.text_input(key="query").input("alert").run()
    text = all_markdown(at)
    for t in titles:
        assert escape_md(t) in text
    assert "javascript:" not in text.replace("javascript\\:", "")
    assert "](javascript" not in text


def test_engine_loads_once_across_reruns(monkeypatch, real_index_copy):
    calls = []
    original = searcher_module.Searcher.__init__

    def counting(self, *args, **kwargs):
        calls.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(searcher_module.Searcher, "__init__", counting)
    at = run_app(monkeypatch, real_index_copy)
    at.text_input(key="query").input("rain").run()
    at.text_input(key="query").input("sign language").run()
    AppTest.from_file(APP, default_timeout=60).run()  # a second browser session
    assert len(calls) == 1
