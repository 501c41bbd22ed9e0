"""Shards (indexer/shard.py) searched as one index (search/sharded.py), in this process.

The shards must answer exactly as the whole index: same candidates, same fused scores,
same top-k, for every mode, with filters, related work and recommendations. The Ray
cluster path is tested in tests/test_cluster_serve.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from indexer import lexical
from indexer.build import build_index
from indexer.errors import IndexCorrupt, IndexNotFound, ModelMismatch, PapersiftError
from indexer.records import Paper
from indexer.shard import bounds, read_set, shard_name, write_shards
from indexer.store import open_index
from search.searcher import Filters, Searcher
from search.sharded import ShardedSearcher, ShardsUnavailable, merge
from tests.conftest import BUNDLED
from tests.fakes import FakeEncoder
from tests.test_windows_index import WindowingEncoder


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The bundled 2,000 papers with the fake encoder, passage windows of 6 words every 4."""
    from indexer import windows

    root = tmp_path_factory.mktemp("whole") / "index"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(windows, "WINDOW", 8)
        mp.setattr(windows, "STRIDE", 4)
        real_split = windows.split
        mp.setattr(windows, "split", lambda tok, texts, window=8, stride=4:
                   real_split(tok, texts, window, stride))
        build_index([BUNDLED], root, WindowingEncoder())
    return root


@pytest.fixture(scope="module")
def three(whole, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "three"
    write_shards(whole, 3, out)
    return out


def _queries(root, n=40, seed=7):
    """Questions from the index's own titles: two to five words, sometimes with a word no
    paper uses and a stopword-only one."""
    papers = open_index(root).papers.all_papers()
    rnd = random.Random(seed)
    out = ["the of and", "zyxwvut quokka", "graph neural networks"]
    for p in rnd.sample(papers, n):
        words = p.title.split()
        out.append(" ".join(rnd.sample(words, min(len(words), rnd.randint(2, 5)))))
    return out


def _same(a, b):
    assert [h.id for h in a] == [h.id for h in b]
    assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_bounds_cover_every_row_once():
    assert bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert bounds(5, 5) == [(i, i + 1) for i in range(5)]
    assert bounds(7, 1) == [(0, 7)]


def test_cut_keeps_each_papers_bm25_score_and_the_corpus_statistics(whole):
    retriever = open_index(whole).lexical
    n = retriever.scores["num_docs"]
    parts = [lexical.cut(retriever, a, b) for a, b in bounds(n, 3)]
    for text in ["graph neural networks", "diffusion distillation one step", "quokka language",
                 "the of and"]:
        terms = lexical.query_terms(retriever, text)
        whole_scores = lexical.scores(retriever, terms)
        assert np.array_equal(np.concatenate([lexical.scores(p, terms) for p in parts]), whole_scores)
        for p in parts:
            assert lexical.ceiling(p, terms) == lexical.ceiling(retriever, terms)
            assert np.array_equal(lexical.idf(p, terms), lexical.idf(retriever, terms))
            assert lexical.num_docs(p) == n
    seeds = [Paper(id="x", title="Graph neural networks for molecules",
                   abstract="message passing over molecular graphs predicts properties")]
    assert lexical.seed_terms(parts[1], seeds, 8) == lexical.seed_terms(retriever, seeds, 8)


def test_cut_survives_save_and_load(whole, tmp_path):
    retriever = open_index(whole).lexical
    part = lexical.cut(retriever, 100, 300)
    lexical.save(part, tmp_path / "bm25")
    back = lexical.load(tmp_path / "bm25")
    terms = lexical.query_terms(retriever, "stochastic gradient descent convergence")
    assert back.scores["num_docs"] == 200 and lexical.num_docs(back) == 2000
    assert np.array_equal(lexical.scores(back, terms), lexical.scores(retriever, terms)[100:300])
    assert lexical.ceiling(back, terms) == lexical.ceiling(retriever, terms)
    (tmp_path / "bm25" / lexical.CORPUS_FILE).write_text('{"num_docs": 5}')  # df above 5
    with pytest.raises(ValueError, match="corpus statistics"):
        lexical.load(tmp_path / "bm25")


def test_shard_manifests_describe_one_complete_set(whole, three):
    infos = read_set(three)
    assert [(s.first, s.end) for s in infos] == bounds(2000, 3)
    assert len({s.run for s in infos}) == 1 and all(s.total == 2000 for s in infos)
    handle, part = open_index(whole), open_index(three / shard_name(1))
    first, end = infos[1].first, infos[1].end
    assert [p.id for p in part.papers.all_papers()] == [
        p.id for p in handle.papers.all_papers()[first:end]]
    assert np.array_equal(np.asarray(part.vectors), np.asarray(handle.vectors[first:end]))
    lo, hi = handle.window_ptr[first], handle.window_ptr[end]
    assert np.array_equal(np.asarray(part.windows), np.asarray(handle.windows[lo:hi]))
    assert np.array_equal(part.window_ptr, handle.window_ptr[first:end + 1] - lo)
    assert part.manifest["model"] == handle.manifest["model"]


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_sharded_search_equals_the_whole_index(whole, tmp_path, shards):
    out = tmp_path / "shards"
    write_shards(whole, shards, out)
    enc = FakeEncoder()
    single, sharded = Searcher(whole, enc), ShardedSearcher(out, enc)
    queries = _queries(whole)
    for q in queries:
        for mode in ("hybrid", "dense", "bm25"):
            a, b = single.query(q, 10, mode=mode), sharded.query(q, 10, mode=mode)
            _same(a.hits, b.hits)
            assert (a.below_floor, a.query) == (b.below_floor, b.query)
            assert b.sharded and b.missing == ()
    cs = sorted(sharded.categories)[0][0]
    filters = [Filters(since="2023-01-01"), Filters(categories=(cs, "cs.LG")),
               Filters(until="2022-06-30", categories=("cs.CV",))]
    for q in queries[:10]:
        for f in filters:
            _same(single.search(q, 10, f), sharded.search(q, 10, f))
        _same(single.search(q, 20, sort="newest"), sharded.search(q, 20, sort="newest"))
    ids = [h.id for h in single.search("language model", 8)]
    for pid in ids:
        _same(single.similar(pid, 10), sharded.similar(pid, 10))
        assert sharded.paper(pid) == single.paper(pid)
    _same(single.recommend(ids[:3], ids[3:4], 10, method="rocchio"),
          sharded.recommend(ids[:3], ids[3:4], 10, method="rocchio"))
    assert sharded.count == single.count == 2000
    assert dict(sharded.categories) == dict(single.categories)
    sharded.close()


def test_typo_corrections_come_from_the_whole_corpus_vocabulary(whole, three):
    enc = FakeEncoder()
    single, sharded = Searcher(whole, enc), ShardedSearcher(three, enc)
    for typed in ["grpah neural netwroks", "reinforcment learning"]:
        a, b = single.query(typed), sharded.query(typed)
        assert (a.query, a.corrected) == (b.query, b.corrected)
        _same(a.hits, b.hits)


def test_a_shard_that_fails_is_named_and_the_others_answer(three, monkeypatch):
    sharded = ShardedSearcher(three, FakeEncoder())
    full = sharded.query("graph neural networks", 10, mode="dense")
    broken = sharded.backend.servers[1]

    def down(*args, **kwargs):
        raise RuntimeError("shard process gone")

    monkeypatch.setattr(broken, "candidates", down)
    monkeypatch.setattr(broken, "papers", down)
    results = sharded.query("graph neural networks", 10, mode="dense")
    assert results.missing == ("shard-001",)
    answer = results.to_dict()
    assert answer["partial"] is True and answer["missing_shards"] == ["shard-001"]
    infos = read_set(three)
    assert all(not infos[1].first <= sharded._row(h.id) < infos[1].end for h in results.hits)
    expected = [h.id for h in full.hits
                if not infos[1].first <= sharded._row(h.id) < infos[1].end]
    assert [h.id for h in results.hits][:len(expected)] == expected[:len(results.hits)]
    for server in sharded.backend.servers:
        monkeypatch.setattr(server, "candidates", down)
    with pytest.raises(ShardsUnavailable, match="no shard answered"):
        sharded.query("graph neural networks")


def test_shard_sets_are_checked(whole, three, tmp_path):
    import shutil

    broken = tmp_path / "missing"
    shutil.copytree(three, broken)
    shutil.rmtree(broken / shard_name(2))
    with pytest.raises(IndexCorrupt, match="2 of 3 shards present.*shard-002"):
        read_set(broken)
    mixed = tmp_path / "mixed"
    shutil.copytree(three, mixed)
    write_shards(whole, 3, tmp_path / "other")
    shutil.rmtree(mixed / shard_name(0))
    shutil.copytree(tmp_path / "other" / shard_name(0), mixed / shard_name(0))
    with pytest.raises(IndexCorrupt, match="different `papersift shard` runs"):
        read_set(mixed)
    with pytest.raises(IndexNotFound, match="no shards"):
        read_set(tmp_path)
    with pytest.raises(PapersiftError, match="too few"):
        write_shards(whole, 2001, tmp_path / "many")
    with pytest.raises(PapersiftError, match="outside the index"):
        write_shards(whole, 2, whole / "shards")
    with pytest.raises(PapersiftError, match="not part of 2 shards"):
        write_shards(whole, 2, three)
    with pytest.raises(ModelMismatch, match="built with fake/bag-of-words"):
        ShardedSearcher(three, FakeEncoder(name="other/model"))


def test_resharding_into_the_same_folder_replaces_every_shard(whole, tmp_path):
    out = tmp_path / "s"
    write_shards(whole, 2, out)
    runs = {s.run for s in read_set(out)}
    write_shards(whole, 2, out)
    assert {s.run for s in read_set(out)} != runs and len({s.run for s in read_set(out)}) == 1


def test_merge_without_answers_is_unavailable():
    with pytest.raises(ShardsUnavailable):
        merge([None, None], 10, 100)


def test_whole_index_features_are_refused_on_shards(three):
    from indexer.errors import InvalidQuery

    sharded = ShardedSearcher(three, FakeEncoder())
    with pytest.raises(InvalidQuery, match="needs the whole index"):
        sharded.browse()
    with pytest.raises(InvalidQuery, match="rocchio"):
        sharded.recommend(["2210.16402"], method="svm")


def test_the_api_serves_shards_as_one_index(whole, three, tmp_path, monkeypatch):
    import httpx

    from search.engine import open_engine
    from search.sharded import open_sharded_engine
    from tests.test_api import serving
    from ui.api import create_app
    from ui.settings import Settings

    engine = open_sharded_engine(three, None, encoder=FakeEncoder())
    single = create_app(open_engine(whole, encoder=FakeEncoder()), Settings(index=whole,
                        lists=tmp_path / "a.sqlite"))
    sharded = create_app(engine, Settings(index=whole, lists=tmp_path / "b.sqlite"))
    with serving(single) as one, serving(sharded) as many, httpx.Client(timeout=20) as http:
        for q in ["graph neural networks", "grpah neural netwroks", "reinforcement learning"]:
            a = http.get(f"{one}/v1/search", params={"q": q}).json()
            b = http.get(f"{many}/v1/search", params={"q": q, "category": "cs.LG"}).json()
            c = http.get(f"{one}/v1/search", params={"q": q, "category": "cs.LG"}).json()
            b_all = http.get(f"{many}/v1/search", params={"q": q}).json()
            assert [h["id"] for h in b_all["hits"]] == [h["id"] for h in a["hits"]]
            assert [h["id"] for h in b["hits"]] == [h["id"] for h in c["hits"]]
            assert b_all["partial"] is False and b_all["missing_shards"] == []
            assert "partial" not in a  # one index: the answer's shape is unchanged
        pid = a["hits"][0]["id"]
        assert http.get(f"{many}/v1/papers/{pid}").json() == http.get(f"{one}/v1/papers/{pid}").json()
        sim_a = http.get(f"{one}/v1/papers/{pid}/similar").json()
        sim_b = http.get(f"{many}/v1/papers/{pid}/similar").json()
        assert [h["id"] for h in sim_a["hits"]] == [h["id"] for h in sim_b["hits"]]
        health = http.get(f"{many}/health").json()
        assert health["ok"] is True and health["papers"] == 2000
        info = http.get(f"{many}/v1/info").json()
        assert info["papers"] == 2000 and info["published"] == http.get(f"{one}/v1/info").json()["published"]
        assert http.get(f"{many}/v1/papers/nonexistent-id").status_code == 404

        def down(*args, **kwargs):
            raise RuntimeError("gone")

        for name in ("candidates", "papers", "ping"):
            monkeypatch.setattr(engine.searcher().backend.servers[2], name, down)
        b = http.get(f"{many}/v1/search", params={"q": "graph neural networks"}).json()
        assert b["partial"] is True and b["missing_shards"] == ["shard-002"]
        health = http.get(f"{many}/health").json()
        assert health["ok"] is False and "shard-002" in health["problem"]
        for server in engine.searcher().backend.servers:
            monkeypatch.setattr(server, "candidates", down)
        r = http.get(f"{many}/v1/search", params={"q": "graph neural networks"})
        assert r.status_code == 503 and "no shard answered" in r.json()["error"]


def test_cli_cuts_shards_and_refuses_bad_sets(whole, tmp_path, capsys):
    from ui.cli import main

    assert main(["shard", "--shards", "2", "--index", str(whole), "--out", str(tmp_path / "s")]) == 0
    assert "2 shards of" in capsys.readouterr().err
    assert [s.end for s in read_set(tmp_path / "s")] == [1000, 2000]
    assert main(["shard", "--shards", "3", "--index", str(whole), "--out", str(tmp_path / "s")]) == 1
    assert "not part of 3 shards" in capsys.readouterr().err
    assert main(["serve", "--ray", "auto"]) == 2
    assert "--ray serves shards" in capsys.readouterr().err
    assert main(["serve", "--shards", str(tmp_path), "--port", "8741"]) == 1
    assert "no shards in" in capsys.readouterr().err


def test_a_shard_reopened_after_resharding_refuses_to_mix_runs(whole, tmp_path):
    from search.sharded import ShardServer

    out = tmp_path / "s"
    write_shards(whole, 2, out)
    before = read_set(out)[1]
    write_shards(whole, 2, out)
    with pytest.raises(IndexCorrupt, match="another `papersift shard` run"):
        ShardServer(str(before.root), before.first, run=before.run)
    assert ShardServer(str(before.root), before.first, run=read_set(out)[1].run).end == 2000
