"""Metrics against hand-computed values, the BEIR readers, fusion on toy rankings, and a
small end-to-end `papersift eval`."""

import json
import math

import numpy as np
import pytest

from indexer.errors import PapersiftError
from search.evaluate import (
    evaluate_beir,
    mrr_at,
    ndcg_at,
    read_qrels,
    read_queries,
    recall_at,
    score_run,
)
from search.hybrid import Fusion, fuse, top_rows
from tests.fakes import FakeEncoder


def test_ndcg_by_hand():
    rel = {"a": 1, "b": 1}
    # hits at ranks 1 and 3: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    assert ndcg_at(["a", "x", "b"], rel) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at(["x", "y"], rel) == 0.0
    assert ndcg_at(["a", "b"], rel) == pytest.approx(1.0)
    graded = {"a": 2, "b": 1}  # gains 2^g - 1: ideal order a, b
    assert ndcg_at(["b", "a"], graded) == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_recall_and_mrr_by_hand():
    rel = {"a": 1, "b": 1, "c": 0}
    ranked = ["x"] * 9 + ["a"] + ["y"] * 50 + ["b"]
    assert recall_at(ranked, rel, 10) == 0.5
    assert recall_at(ranked, rel, 100) == 1.0
    assert mrr_at(ranked, rel) == pytest.approx(0.1)
    assert mrr_at(["x"] * 10 + ["a"], rel) == 0.0


def test_score_run_averages_over_judged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    scores = score_run({"q1": ["a"], "q2": ["x", "b"]}, qrels)
    assert scores["mrr@10"] == pytest.approx(0.75)
    assert scores["recall@10"] == 1.0


def test_beir_readers_with_header_crlf_and_without_header(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "first"}\r\n\r\n{"_id": 2, "text": "second"}\r\n')
    assert read_queries(tmp_path / "q.jsonl") == {"1": "first", "2": "second"}
    (tmp_path / "a.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\n1\td1\t1\r\n1\td2\t2\r\n2\td3\t1\r\n")
    assert read_qrels(tmp_path / "a.tsv") == {"1": {"d1": 1, "d2": 2}, "2": {"d3": 1}}
    (tmp_path / "b.tsv").write_text("1\td1\t1\n")
    assert read_qrels(tmp_path / "b.tsv") == {"1": {"d1": 1}}
    (tmp_path / "c.tsv").write_text("1\td1\n")
    with pytest.raises(PapersiftError, match="c.tsv:1: expected query-id, corpus-id, score"):
        read_qrels(tmp_path / "c.tsv")


def test_top_rows_skips_zero_scores_and_respects_allowed():
    scores = np.array([0.0, 3.0, 1.0, 2.0, 0.0], dtype=np.float32)
    assert top_rows(scores, 10).tolist() == [1, 3, 2]
    assert top_rows(scores, 2).tolist() == [1, 3]
    assert top_rows(scores, 10, allowed=np.array([2, 4])).tolist() == [2]


def test_fusion_on_toy_rankings():
    dense_rows, bm25_rows = np.array([1, 2, 3]), np.array([3, 4])
    union = np.union1d(dense_rows, bm25_rows)  # [1, 2, 3, 4]
    dense = np.array([0.9, 0.8, 0.7, 0.1])
    bm25 = np.array([0.0, 0.0, 5.0, 4.0])
    rows, _ = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("rrf", rrf_k=60))
    assert rows[0] == 3  # the only row both rankers found
    rows, scores = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("minmax", dense_weight=1.0))
    assert rows.tolist() == [1, 2, 3, 4]
    rows, _ = fuse(dense_rows, dense, bm25_rows, bm25, Fusion("minmax", dense_weight=0.0))
    assert rows.tolist()[:2] == [3, 4]
    assert sorted(rows.tolist()) == union.tolist()


def make_beir(folder, n=50):
    folder.mkdir()
    topics = ["protein folding", "graph networks", "diffusion images", "speech recognition",
              "robot grasping"]
    with (folder / "corpus.jsonl").open("w") as f:
        for i in range(n):
            t = topics[i % 5]
            f.write(json.dumps({"_id": f"d{i}", "title": f"{t} study {i}",
                                "text": f"We study {t} with method number {i}."}) + "\n")
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{j}", "text": f"method number {j} for {topics[j % 5]}"}) + "\n"
        for j in range(5)))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{j}\td{j}\t1\n" for j in range(5)))
    return folder


def test_evaluate_beir_builds_once_and_scores_each_mode(tmp_path):
    beir = make_beir(tmp_path / "beir")
    enc = FakeEncoder()
    built = []
    first = evaluate_beir(beir, "test", ["dense", "bm25", "hybrid"], enc, tmp_path / "cache",
                          on_build=built.append)
    again = evaluate_beir(beir, "test", ["bm25"], enc, tmp_path / "cache", on_build=built.append)
    assert len(built) == 1  # cached by corpus hash, model and settings
    assert first["bm25"]["ndcg@10"] == again["bm25"]["ndcg@10"] > 0.9
    assert set(first) == {"dense", "bm25", "hybrid"}
    assert first["hybrid"]["queries"] == 5
    with pytest.raises(PapersiftError, match="qrels/dev.tsv: missing"):
        evaluate_beir(beir, "dev", ["bm25"], enc, tmp_path / "cache")


@pytest.mark.model
def test_eval_command_end_to_end(tmp_path):
    from tests.test_cli import papersift

    beir = make_beir(tmp_path / "beir")
    proc = papersift("eval", "--beir", beir, "--json", "--cache", tmp_path / "cache",
                     "--mode", "bm25", "--mode", "hybrid", check=0)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["mode"] for r in rows] == ["bm25", "hybrid"]
    assert all(r["ndcg@10"] > 0.5 and r["queries"] == 5 for r in rows)
    table = papersift("eval", "--beir", beir, "--cache", tmp_path / "cache", check=0)
    assert "nDCG@10" in table.stdout and "hybrid" in table.stdout
    bad = papersift("eval", "--beir", beir, "--mode", "fast", "--cache", tmp_path / "cache")
    assert bad.returncode == 2 and "mode must be one of" in bad.stderr
