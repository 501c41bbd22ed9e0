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
    assert [h.sources for h in a] == [h.sources for h in b]  # each retriever's rank too


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
    # the other shards' papers of the whole answer stay, with their scores (papers beyond
    # the whole index's dense pool may join them: the missing shard no longer fills it)
    lowest = min(h.score for h in results.hits)
    kept = {h.id: h.score for h in results.hits}
    for h in full.hits:
        if not infos[1].first <= sharded._row(h.id) < infos[1].end and h.score > lowest:
            assert kept[h.id] == pytest.approx(h.score, abs=1e-6)
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
    with pytest.raises(PapersiftError, match="not empty"):
        write_shards(whole, 3, three)
    with pytest.raises(ModelMismatch, match="built with fake/bag-of-words"):
        ShardedSearcher(three, FakeEncoder(name="other/model"))


def test_a_set_appears_whole_or_not_at_all(whole, three, tmp_path):
    out = tmp_path / "s"

    def crash(i, root):
        assert root.name == shard_name(i) and root.parent.name.startswith(".s.writing-")
        if i == 1:
            raise KeyboardInterrupt  # as a kill would stop it between shards

    with pytest.raises(KeyboardInterrupt):
        write_shards(whole, 3, out, on_shard=crash)
    assert not out.exists() and not list(tmp_path.glob(".s.writing-*"))
    (tmp_path / ".s.writing-0123").mkdir()  # what a kill -9 leaves: removed by the next run
    write_shards(whole, 2, out)
    assert [s.end for s in read_set(out)] == [1000, 2000] and not list(tmp_path.glob(".s.*"))
    with pytest.raises(PapersiftError, match="not empty"):
        write_shards(whole, 2, out)
    with pytest.raises(PapersiftError, match="outside the index folder"):
        write_shards(out / shard_name(0), 2, out)  # the index inside the output
    (tmp_path / "file").write_text("x")
    with pytest.raises(PapersiftError, match="not empty"):
        write_shards(whole, 2, tmp_path / "file")


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

        import search.sharded

        monkeypatch.setattr(search.sharded, "HEALTH_TTL", 0.0)  # look again at once
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
    assert "not empty" in capsys.readouterr().err
    assert main(["serve", "--ray", "auto"]) == 2
    assert "--ray serves shards" in capsys.readouterr().err
    assert main(["serve", "--shards", str(tmp_path), "--port", "8741"]) == 1
    assert "no shards in" in capsys.readouterr().err


def test_a_shard_reopened_after_resharding_refuses_to_mix_runs(whole, tmp_path):
    import shutil

    from search.sharded import ShardServer

    out = tmp_path / "s"
    write_shards(whole, 2, out)
    before = read_set(out)[1]
    shutil.rmtree(out)  # replaced under a running server
    write_shards(whole, 2, out)
    with pytest.raises(IndexCorrupt, match="another `papersift shard` run"):
        ShardServer(str(before.root), before.first, run=before.run)
    assert ShardServer(str(before.root), before.first, run=read_set(out)[1].run).end == 2000


@pytest.mark.parametrize("fusion", ["adaptive", "rrf", "minmax", "convex"])
def test_every_fusion_large_k_ties_and_exclusions_agree(whole, three, fusion):
    """Short title words tie often in BM25 (same counts, same lengths): ties go to the lower
    row in one index and in the merge alike; k up to 1000 reaches past the pools."""
    from search.hybrid import Floor, Fusion

    enc, f = FakeEncoder(), Fusion(fusion)
    single = Searcher(whole, enc, fusion=f, floor=Floor(0.3, 0.5))
    sharded = ShardedSearcher(three, enc, fusion=f, floor=Floor(0.3, 0.5))
    for q in ["Generative", "given sets", "learning", "graph", "the model", "quantum"]:
        for k in (10, 100, 1000):
            for mode in ("hybrid", "bm25", "dense"):
                a = single.query(q, k, mode=mode, correct=False)
                b = sharded.query(q, k, mode=mode, correct=False)
                _same(a.hits, b.hits)
                assert a.below_floor == b.below_floor
    authors = [a for p in open_index(whole).papers.all_papers()[:50] for a in p.authors][:5]
    for name in authors:
        f_ = Filters(author=name)
        _same(single.search("learning", 50, f_), sharded.search("learning", 50, f_))
    f_ = Filters(since="2023-01-01", categories=("cs.LG",))
    _same(single.search("learning", 30, f_, sort="upvotes"),
          sharded.search("learning", 30, f_, sort="upvotes"))
    ids = [h.id for h in single.search("neural network", 5)]
    _same(single.similar(ids[0], 200, f_), sharded.similar(ids[0], 200, f_))
    _same(single.recommend(ids[:2], ids[2:4], 300, f_, method="rocchio"),
          sharded.recommend(ids[:2], ids[2:4], 300, f_, method="rocchio"))
    nothing = Filters(since="2099-01-01")
    assert single.search("learning", 10, nothing) == sharded.search("learning", 10, nothing) == []


def test_unknown_papers_and_shards_that_do_not_answer_are_told_apart(three, monkeypatch):
    from indexer.errors import UnknownPaper

    sharded = ShardedSearcher(three, FakeEncoder())
    with pytest.raises(UnknownPaper) as e:
        sharded.paper("9999.99999")
    assert "did not answer" not in str(e.value)
    infos = read_set(three)
    in_last = open_index(infos[2].root).papers.all_papers()[0].id
    in_first = open_index(infos[0].root).papers.all_papers()[0].id

    def down(*args, **kwargs):
        raise RuntimeError("gone")

    server = sharded.backend.servers[2]
    for name in ("row_of", "rows_of", "papers", "candidates", "vectors"):
        monkeypatch.setattr(server, name, down)
    with pytest.raises(ShardsUnavailable, match="shard-002 did not answer"):
        sharded.paper(in_last)
    with pytest.raises(ShardsUnavailable, match="shard-002"):
        sharded.similar(in_last)
    hits = sharded.similar(in_first, 10)
    assert hits and sharded.partial() == {"partial": True, "missing_shards": ["shard-002"]}
    sharded.recommend([in_first], k=5)
    assert sharded.partial()["missing_shards"] == ["shard-002"]
    assert sharded.rows_of([in_first, in_last]).keys() == {in_first}


def test_a_shard_failing_after_its_candidates_is_still_named(three, monkeypatch):
    sharded = ShardedSearcher(three, FakeEncoder())
    full = sharded.query("neural networks", 30, mode="dense", floor=False)

    def down(*args, **kwargs):
        raise RuntimeError("gone")

    for server in sharded.backend.servers:
        monkeypatch.setattr(server, "papers", down)
    r = sharded.query("neural networks", 30, mode="dense", floor=False)
    assert full.hits and not r.hits and r.missing == ("shard-000", "shard-001", "shard-002")


def test_shard_zero_down_still_gives_partial_answers_with_corrections(three, monkeypatch):
    sharded = ShardedSearcher(three, FakeEncoder())

    def down(*args, **kwargs):
        raise RuntimeError("gone")

    for name in ("candidates", "papers", "suggest", "row_of", "rows_of"):
        monkeypatch.setattr(sharded.backend.servers[0], name, down)
    r = sharded.query("grpah neural netwroks")  # the vocabulary comes from the next shard
    assert r.corrected and r.missing == ("shard-000",) and r.hits


def test_recommend_survives_a_shard_that_comes_back_between_lookups(three, monkeypatch):
    sharded = ShardedSearcher(three, FakeEncoder())
    last = read_set(three)[2]
    pid = open_index(last.root).papers.all_papers()[0].id
    server = sharded.backend.servers[2]
    real, calls = server.rows_of, []

    def once(ids):
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("restarting")
        return real(ids)

    monkeypatch.setattr(server, "rows_of", once)
    assert sharded.recommend([pid], k=5)


def test_a_running_shard_writer_keeps_its_staging_folder(whole, tmp_path):
    out = tmp_path / "s"
    seen = []

    def second_run(i, root):  # another `papersift shard` to the same folder, meanwhile
        if i == 0 and not seen:
            seen.append(root.parent)
            with pytest.raises(ZeroDivisionError):
                write_shards(whole, 3, out, on_shard=lambda i, r: 1 / 0)
            assert root.parent.exists()  # it left this run's folder alone

    write_shards(whole, 3, out, on_shard=second_run)
    assert [s.index for s in read_set(out)] == [0, 1, 2]


def test_out_may_not_be_a_link_or_lie_about_its_place(whole, three, tmp_path):
    import shutil

    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(PapersiftError, match="link or a mount point"):
        write_shards(whole, 2, tmp_path / "link")
    odd = tmp_path / "odd"
    shutil.copytree(three, odd)
    shutil.copytree(odd / shard_name(1), odd / "shard-003")
    with pytest.raises(IndexCorrupt, match="does not fit the set"):
        read_set(odd)
