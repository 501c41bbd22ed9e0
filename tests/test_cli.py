"""The installed `papersift` entry point, run as a user runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BUNDLED, write_jsonl

BIN = Path(sys.executable).parent / "papersift"


def papersift(*args, check=None):
    exe = str(BIN) if BIN.exists() else shutil.which("papersift")
    assert exe, "papersift is not installed (make test installs it)"
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture
def cli(monkeypatch, capsys, real_encoder):
    """The CLI in this process with the session's model (each subprocess would load it
    again, about 10 s); the subprocess tests keep the whole path covered."""
    from types import SimpleNamespace

    from ui import clikit
    from ui.cli import main

    monkeypatch.setattr(clikit, "make_encoder", lambda *a, **k: real_encoder)
    monkeypatch.setattr(clikit, "make_query_encoder", lambda *a, **k: real_encoder)

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def one_line_error(proc, code, *fragments):
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("papersift: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.model
def test_build_reports_bad_lines_and_summary(tmp_path):
    lines = BUNDLED.read_text(encoding="utf-8").splitlines()[:40]
    corpus = write_jsonl(tmp_path / "mine.jsonl", lines + ["{oops", '{"id": "x"}'])
    proc = papersift("build", corpus, "--index", tmp_path / "ix", "--batch-size", 16, check=0)
    assert f"{corpus}:41: invalid JSON" in proc.stderr
    assert f"{corpus}:42: neither title nor abstract" in proc.stderr
    assert "Indexed 40 papers (2 bad lines skipped, 0 duplicates merged)" in proc.stdout
    info = papersift("info", "--index", tmp_path / "ix", "--verify", check=0).stdout
    assert "papers      40" in info and "all-MiniLM-L6-v2" in info and "sha256 verified" in info

    strict = papersift("build", corpus, "--index", tmp_path / "strict", "--strict")
    one_line_error(strict, 1, f"{corpus}:41: invalid JSON")
    assert not (tmp_path / "strict" / "CURRENT").exists()


@pytest.mark.model
def test_search_json_and_queries_file(real_index_copy, tmp_path, cli):
    proc = papersift("search", "scaling laws for weight decay", "-k", 3, "--json", "--no-floor",
                     "--index", real_index_copy, check=0)
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert set(hits[0]) == {"rank", "id", "score", "title", "authors", "published",
                            "categories", "url", "sources"}
    assert set(hits[0]["sources"]) <= {"dense", "bm25"} and hits[0]["sources"]
    assert hits[0]["id"] == "2505.13738"

    queries = tmp_path / "q.txt"
    queries.write_text("rain forecasting\n\nsign language recognition\n")
    proc = cli("search", "--queries", queries, "-k", 2, "--json", "--no-floor",
               "--index", real_index_copy)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["query"] for r in rows] == ["rain forecasting", "sign language recognition"]
    assert all(r["took_ms"] > 0 and len(r["hits"]) == 2 for r in rows)

    table = cli("search", "sign language", "-k", 1000, "--index", real_index_copy, "--json")
    scores = [json.loads(line)["score"] for line in table.stdout.splitlines()]
    # k above the index size: the close matches, not all 300 ...
    assert 1 <= len(scores) < 300 and scores == sorted(scores, reverse=True)
    everything = cli("search", "sign language", "-k", 1000, "--index", real_index_copy,
                     "--json", "--no-floor")
    assert len(everything.stdout.splitlines()) == 300  # ... unless --no-floor


@pytest.mark.model
def test_nonsense_says_no_close_matches_and_typos_are_corrected(real_index_copy, tmp_path, cli):
    proc = cli("search", "qwpoeiru zmxncb asdkjh", "--index", real_index_copy)
    assert "No close matches" in proc.stdout and "relevance floor" in proc.stderr
    assert cli("search", "qwpoeiru zmxncb asdkjh", "--json", "--index", real_index_copy).stdout == ""

    proc = cli("search", "sign langauge recogniton", "-k", 3, "--json", "--index", real_index_copy)
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "Showing results for 'sign language recognition'" in proc.stderr
    assert hits and all(h["corrected"] == "sign language recognition" for h in hits)
    assert "sign language" in hits[0]["title"].lower()
    queries = tmp_path / "q.txt"
    queries.write_text("sign langauge recogniton\nsign language recognition\n")
    rows = [json.loads(line) for line in cli(
        "search", "--queries", queries, "--json", "--index", real_index_copy
    ).stdout.splitlines()]
    assert [r["corrected"] for r in rows] == ["sign language recognition", None]


def test_similar_by_url_without_loading_a_model(real_index_copy):
    proc = papersift("similar", "https://arxiv.org/abs/2504.19754v2", "-k", 4, "--json",
                     "--index", real_index_copy, check=0)
    ids = [json.loads(line)["id"] for line in proc.stdout.splitlines()]
    assert len(ids) == 4 and "2504.19754" not in ids
    table = papersift("similar", "2504.19754", "-k", 2, "--index", real_index_copy, check=0)
    assert "Similar to 2504.19754" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["search", "   "], 2, "empty query"),
        (["search", "x", "-k", "0"], 2, "k must be between 1 and 1000, got 0"),
        (["search", "x", "-k", "1001"], 2, "k must be between 1 and 1000, got 1001"),
        (["search"], 2, "give either a QUERY or --queries FILE"),
        (["similar", "x", "-k", "abc"], 2, "Invalid value for '-k'"),
        (["nonsense"], 2, "No such command"),
        (["similar", "9999.99999"], 1, "unknown paper id '9999.99999'"),
    ],
)
def test_usage_and_lookup_errors(real_index_copy, args, code, fragment):
    one_line_error(papersift(*args, "--index", real_index_copy), code, fragment)


def test_missing_index(tmp_path):
    for args in (["search", "x"], ["similar", "2401.00001"], ["info"]):
        one_line_error(papersift(*args, "--index", tmp_path / "none"), 1,
                       f"no index at {tmp_path / 'none'}")


def test_index_from_environment(real_index_copy, monkeypatch):
    monkeypatch.setenv("PAPERSIFT_INDEX", str(real_index_copy))
    assert "papers      300" in papersift("info", check=0).stdout


@pytest.mark.model
def test_index_built_with_another_model_is_refused(toy_index):
    proc = papersift("search", "graph networks", "--index", toy_index)
    one_line_error(proc, 1, "built with model fake/bag-of-words",
                   "configured model is sentence-transformers/all-MiniLM-L6-v2")


def test_bad_model_path_is_one_line(real_index_copy, tmp_path):
    proc = papersift("search", "x", "--index", real_index_copy, "--model", tmp_path)
    one_line_error(proc, 1, "cannot load model")
