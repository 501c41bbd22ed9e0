"""`papersift fetch` and `papersift update --from` against a local HTTP server on 127.0.0.1."""

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.feeds import FakeService, atom_page, bundled_papers, hf_items, local_server, oai_page
from tests.test_cli import papersift

NEW = bundled_papers(25, skip=300)  # not in the 300-paper test index
KNOWN = bundled_papers(3)  # already in it


class FakeServices(FakeService):
    log: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        FakeServices.log.append((time.monotonic(), url.path, q))
        if url.path == "/api/query":
            start, size = int(q["start"]), int(q["max_results"])
            body, kind = atom_page(NEW[start:start + size], len(NEW), start), "application/atom+xml"
        elif url.path == "/oai":
            token = q.get("resumptionToken")
            body = oai_page(NEW[:10], "next") if not token else oai_page(NEW[10:], None)
            kind = "text/xml"
        elif url.path == "/api/daily_papers":
            body, kind = json.dumps(hf_items(KNOWN, upvotes=40)).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.answer(200, body, kind)


@pytest.fixture(scope="module")
def services():
    with local_server(FakeServices) as url:
        yield url


def test_fetch_arxiv_is_spaced_and_complete(services, tmp_path):
    FakeServices.log.clear()
    out = tmp_path / "arxiv.jsonl"
    proc = papersift("fetch", "arxiv", "--category", "cs.CL", "--category", "cs.LG",
                     "--since", "2025-01-01", "--until", "2026-12-31", "--page-size", 10,
                     "--delay", 0.4, "--arxiv-url", f"{services}/api/query", "--out", out, check=0)
    assert "Wrote 25 papers" in proc.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == sorted((p["id"] for p in NEW),
                                               key=lambda i: next(p["listing_date"] for p in NEW
                                                                  if p["id"] == i))
    times = [t for t, path, _ in FakeServices.log if path == "/api/query"]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.4 - 0.01, gaps  # measured on the server's clock
    query = FakeServices.log[0][2]
    assert query["search_query"] == ("(cat:cs.CL OR cat:cs.LG) AND "
                                     "submittedDate:[202501010000 TO 202612312359]")
    assert query["sortBy"] == "submittedDate"


def test_fetch_oai_and_hf(services, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSIFT_OAI_URL", f"{services}/oai")
    proc = papersift("fetch", "oai", "--set", "cs", "--from", "2025-01-01", "--delay", 0,
                     "--out", tmp_path / "oai.jsonl", check=0)
    assert "Wrote 25 papers" in proc.stdout
    proc = papersift("fetch", "hf", "--date", "2026-07-24", "--delay", 0,
                     "--hf-url", f"{services}/api/daily_papers", "--out", tmp_path / "hf.jsonl",
                     check=0)
    assert "Wrote 3 papers" in proc.stdout
    bad = papersift("fetch", "hf", "--date", "24/07/2026", "--hf-url", services,
                    "--out", tmp_path / "x.jsonl")
    assert bad.returncode == 2 and "--date must be a YYYY-MM-DD date, got '24/07/2026'" in bad.stderr


def test_fetch_over_a_damaged_cursor_starts_over_with_one_note(services, tmp_path):
    out = tmp_path / "arxiv.jsonl"
    out.with_name("arxiv.jsonl.part").write_bytes(b'{"id": "half"}\n')
    cursor = out.with_name("arxiv.jsonl.cursor.json")
    cursor.write_text(json.dumps({"job": {}, "state": {"pending": [], "start": 0},
                                  "offset": 10**12, "count": 1}))
    proc = papersift("fetch", "arxiv", "--category", "cs.CL", "--page-size", 25, "--delay", 0,
                     "--arxiv-url", f"{services}/api/query", "--out", out, check=0)
    assert proc.stderr.splitlines()[0] == (
        f"papersift: {cursor}: damaged fetch cursor (offset 1000000000000 is beyond the 15 "
        "bytes of arxiv.jsonl.part); starting the fetch over")
    assert "Wrote 25 papers" in proc.stdout and "half" not in out.read_text()
    assert out.stat().st_size < 1_000_000 and not cursor.exists()


@pytest.mark.model
def test_update_from_arxiv_then_hf(services, real_index_copy):
    proc = papersift("update", "--from", "arxiv", "--category", "cs.CL", "--since", "2025-01-01",
                     "--until", "2026-12-31", "--delay", 0, "--arxiv-url", f"{services}/api/query",
                     "--index", real_index_copy, check=0)
    assert "25 added" in proc.stdout and "encoded 25 papers" in proc.stdout
    assert "325 in the index" in proc.stdout
    assert not list((real_index_copy / "fetched").glob("*.jsonl"))

    proc = papersift("update", "--from", "hf", "--date", "2026-07-24", "--delay", 0,
                     "--hf-url", f"{services}/api/daily_papers", "--index", real_index_copy,
                     check=0)
    assert "3 refreshed without re-embedding" in proc.stdout and "encoded 0 papers" in proc.stdout
    hits = papersift("similar", KNOWN[1]["id"], "--index", real_index_copy, "-k", 1, check=0)
    assert hits.returncode == 0
    from search import Searcher

    assert Searcher(real_index_copy).paper(KNOWN[1]["id"]).upvotes == 41


def test_update_usage_errors(tmp_path):
    proc = papersift("update", "--index", tmp_path)
    assert proc.returncode == 2 and "give either FILE... or --from" in proc.stderr
    proc = papersift("update", "--from", "nowhere", "--index", tmp_path)
    assert proc.returncode == 2 and "--from must be arxiv, oai or hf" in proc.stderr


def test_update_from_takes_the_write_lock_before_fetching(services, tmp_path, toy_index):
    import fcntl

    FakeServices.log.clear()
    with (toy_index / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another writer (an overlapping cron run)
        proc = papersift("update", "--from", "arxiv", "--category", "cs.CL", "--delay", 0,
                         "--arxiv-url", f"{services}/api/query", "--index", toy_index)
    assert proc.returncode == 1 and "another papersift process is writing" in proc.stderr
    assert FakeServices.log == []  # refused before any request
    assert not (toy_index / "fetched").exists()


def test_update_of_an_index_without_current_is_refused_then_repaired(tmp_path, toy_index, toy_file):
    from tests.test_cli import one_line_error

    gen = (toy_index / "CURRENT").read_text().strip()
    (toy_index / "CURRENT").unlink()
    proc = papersift("update", toy_file, "--index", toy_index)
    one_line_error(proc, 1, "generation folders found", gen, "papersift repair")
    assert [p.name for p in toy_index.iterdir() if p.name.startswith("gen-")] == [gen]
    proc = papersift("repair", "--index", toy_index, check=0)
    assert f"now serving {gen}" in proc.stdout
    (toy_index / "CURRENT").write_bytes(b"\xff\xfe")
    one_line_error(papersift("info", "--index", toy_index), 1, "CURRENT: not UTF-8")
    one_line_error(papersift("search", "x", "--index", toy_index), 1, "CURRENT: not UTF-8")
