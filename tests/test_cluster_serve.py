"""Sharded search on a real Ray cluster: two nodes on loopback (the `ray_cluster` fixture),
one actor per shard (search/sharded.py, `ray_shards`)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from indexer.build import build_index
from indexer.shard import write_shards
from search.searcher import Filters, Searcher
from search.sharded import ShardedSearcher
from tests.conftest import BUNDLED
from tests.fakes import FakeEncoder
from tests.test_shard import _queries

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster-serve")
    build_index([BUNDLED], folder / "whole", FakeEncoder())
    write_shards(folder / "whole", 2, folder / "shards")
    return folder / "whole", folder / "shards"


def _actors_of(sharded):
    """Each shard actor's process and node, as it reports them."""
    return {name: sharded.backend.call(i, "ping") for i, name in enumerate(sharded.backend.names)}


def test_shards_on_two_nodes_answer_as_the_whole_index(ray_cluster, indexes):
    whole, shards = indexes
    enc = FakeEncoder()
    single = Searcher(whole, enc)
    sharded = ShardedSearcher(shards, enc, address=ray_cluster, timeout=30)
    try:
        placed = _actors_of(sharded)
        assert set(placed) == {"shard-000", "shard-001"}
        assert len({a["node"] for a in placed.values()}) == 2  # spread over both nodes
        queries = _queries(whole, n=47)
        assert len(queries) == 50
        for q in queries:
            a, b = single.query(q, 10), sharded.query(q, 10)
            assert [h.id for h in a.hits] == [h.id for h in b.hits], q
            assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-6)
            assert b.missing == ()
        f = Filters(since="2023-01-01", categories=("cs.LG",))
        assert [h.id for h in single.search("neural networks", 10, f)] == [
            h.id for h in sharded.search("neural networks", 10, f)]
        pid = single.search("language models", 1)[0].id
        assert [h.id for h in single.similar(pid)] == [h.id for h in sharded.similar(pid)]
    finally:
        sharded.close()


def test_a_killed_shard_actor_is_named_then_restarted(ray_cluster, indexes):
    whole, shards = indexes
    enc = FakeEncoder()
    full = [h.id for h in Searcher(whole, enc).query("graph neural networks", 10).hits]
    sharded = ShardedSearcher(shards, enc, address=ray_cluster, timeout=5)
    try:
        victim = _actors_of(sharded)["shard-001"]
        assert victim["pid"] != os.getpid()
        os.kill(victim["pid"], signal.SIGKILL)  # the shard actor's own worker process
        partial, deadline = 0, time.monotonic() + 90
        while True:  # until Ray has restarted it: partial answers naming it, then whole ones
            assert time.monotonic() < deadline, "the killed shard never came back"
            r = sharded.query("graph neural networks", 10)
            if not r.missing:
                assert [h.id for h in r.hits] == full
                break
            assert r.missing == ("shard-001",) and r.to_dict()["partial"] is True and r.hits
            partial += 1
            time.sleep(0.2)
        assert _actors_of(sharded)["shard-001"]["pid"] != victim["pid"]  # a new process
        assert sharded.health()["down"] == []
        import ray

        ray.kill(sharded.backend.actors[0], no_restart=True)  # down for good
        r = sharded.query("graph neural networks", 10)
        assert r.missing == ("shard-000",) and r.hits
        assert sharded.health()["down"] == ["shard-000"]
    finally:
        sharded.close()
