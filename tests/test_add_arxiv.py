"""Adding one arXiv paper by id (the app's "Fetch and add") against a local fake arXiv API.

The server on 127.0.0.1 answers with the recorded API feeds in tests/fixtures; every
failure must leave the served generation exactly as it was.
"""

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from indexer.arxiv import NotOnArxiv
from indexer.errors import IndexLocked, InvalidQuery
from indexer.fetch import FetchError, Throttled, Unreachable
from indexer.store import open_index, read_manifest
from indexer.update import add_arxiv_paper
from search import Searcher
from tests.conftest import TOY, another_writer
from tests.feeds import FakeService, atom_page, free_port, local_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ATOM = "application/atom+xml"
FEEDS = {"1309.4668": "arxiv_query_2025_11.xml", "2206.06921": "arxiv_query_classic.xml"}
NO_ID_ENTRY = (b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
               b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><title>arXiv Query'
               b"</title><opensearch:totalResults>1</opensearch:totalResults><opensearch:"
               b"startIndex>0</opensearch:startIndex><entry><title/></entry></feed>")


class FakeArxiv(FakeService):
    """/api/query answers from the fixtures; /status/NNN/api/query fails with NNN;
    /flaky/api/query fails once with 502 then answers; /no-id/api/query answers with an
    entry without an arXiv id (how arXiv has answered an id it does not know)."""

    log: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        asked = parse_qs(url.query).get("id_list", [""])[0]
        FakeArxiv.log.append((url.path, asked))
        parts = url.path.strip("/").split("/")
        if parts[0] == "status":
            status = int(parts[1])
            headers = {"Retry-After": "120" if status == 429 else "30"} if status in (
                429, 503) else {}
            self.answer(status, b"Rate exceeded." if status in (429, 503) else b"no",
                        headers=headers)
        elif parts[0] == "flaky" and len(FakeArxiv.log) == 1:
            self.answer(502, b"bad gateway")
        elif parts[0] == "no-id":
            self.answer(200, NO_ID_ENTRY, ATOM)
        elif parts[0] in ("trickle", "huge"):  # a byte every 0.2 s for 3 s / 3 MB at once
            self.send_response(200)
            self.send_header("Content-Type", ATOM)
            self.end_headers()
            try:
                if parts[0] == "huge":
                    self.wfile.write(b"<feed>" + b"x" * 3_000_000)
                for _ in range(15 if parts[0] == "trickle" else 0):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:  # the client gave up: as it should
                pass
        elif asked in FEEDS:
            self.answer(200, (FIXTURES / FEEDS[asked]).read_bytes(), ATOM)
        else:
            self.answer(200, atom_page([], 0, 0), ATOM)  # arXiv has no such paper



@pytest.fixture(scope="module")
def arxiv():
    with local_server(FakeArxiv) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_log(monkeypatch):
    FakeArxiv.log.clear()
    monkeypatch.setattr("indexer.arxiv.ARXIV_SPACING", 0.0)  # spacing has its own test


def served(root):
    """What must not change on a failure: the served generation, its count, its files."""
    gen, manifest = read_manifest(root)
    return gen, manifest["count"], sorted(p.name for p in root.iterdir() if p.name != "fetched")


def test_adds_exactly_that_paper_and_it_is_searchable(toy_index, fake_encoder, arxiv):
    before = served(toy_index)
    paper = add_arxiv_paper(toy_index, "https://arxiv.org/abs/1309.4668v1", fake_encoder,
                            base_url=f"{arxiv}/api/query")
    assert (paper.id, paper.title) == ("1309.4668",
                                       "Electron cloud observations at the ISIS Proton Synchrotron")
    assert paper.authors == ("A. Pertica", "S. J. Payne") and paper.version == 1
    assert paper.primary_category == "physics.acc-ph" and paper.published == "2013-09-18"
    assert FakeArxiv.log == [("/api/query", "1309.4668")]
    ids = [p.id for p in open_index(toy_index).papers.all_papers()]
    assert ids == [r["id"] for r in TOY] + ["1309.4668"]
    assert read_manifest(toy_index)[0] != before[0]
    assert not list((toy_index / "fetched").iterdir())  # the download is not kept
    hit = Searcher(toy_index, fake_encoder).search("electron cloud proton synchrotron", k=1)[0]
    assert hit.id == "1309.4668"


def test_classic_feed_and_an_old_style_id(toy_index, fake_encoder, arxiv):
    paper = add_arxiv_paper(toy_index, "arXiv:2206.06921", fake_encoder,
                            base_url=f"{arxiv}/api/query")
    assert paper.id == "2206.06921" and paper.title
    with pytest.raises(NotOnArxiv, match="arXiv has no paper hep-th/9901001"):
        add_arxiv_paper(toy_index, "hep-th/9901001v2", fake_encoder,
                        base_url=f"{arxiv}/api/query")
    assert FakeArxiv.log[-1] == ("/api/query", "hep-th/9901001")


def test_a_paper_already_there_is_returned_without_a_request(toy_index, fake_encoder, arxiv):
    before = served(toy_index)
    paper = add_arxiv_paper(toy_index, "2401.00003v4", fake_encoder, base_url=f"{arxiv}/api/query")
    assert paper.title == TOY[2]["title"] and paper.upvotes == 12
    assert FakeArxiv.log == [] and served(toy_index) == before


@pytest.mark.parametrize("typed", ["not an id", "2401.1", "https://example.com/abs/2401.00001",
                                   "javascript:alert(1)", "", None])
def test_malformed_ids_are_refused_before_any_request(toy_index, fake_encoder, arxiv, typed):
    before = served(toy_index)
    with pytest.raises(InvalidQuery, match="not an arXiv id or URL") as caught:
        add_arxiv_paper(toy_index, typed, fake_encoder, base_url=f"{arxiv}/api/query")
    assert caught.value.field == "arxiv_id" and "\n" not in str(caught.value)
    assert FakeArxiv.log == [] and served(toy_index) == before


def test_a_locked_index_is_refused_and_left_as_it_was(toy_index, fake_encoder, arxiv):
    before = served(toy_index)
    with another_writer(toy_index), pytest.raises(IndexLocked, match="another papersift"):
        add_arxiv_paper(toy_index, "1309.4668", fake_encoder, base_url=f"{arxiv}/api/query")
    assert served(toy_index) == before


@pytest.mark.parametrize("mode, message", [("trickle", r"no complete answer within 1 s"),
                                           ("huge", r"the answer is over 2,000,000 bytes")])
def test_a_slow_or_huge_answer_is_cut_off_without_holding_the_lock(
        toy_index, fake_encoder, arxiv, monkeypatch, mode, message):
    import threading

    from indexer.store import writer_lock

    monkeypatch.setattr("indexer.update.SINGLE_PAPER_SECONDS", 1.0)
    before = served(toy_index)
    outcome = []

    def fetch():
        try:
            add_arxiv_paper(toy_index, "1309.4668", fake_encoder, attempts=1,
                            base_url=f"{arxiv}/{mode}/api/query")
        except FetchError as e:
            outcome.append(str(e))

    worker = threading.Thread(target=fetch)
    started = time.monotonic()
    worker.start()
    time.sleep(0.3)
    with writer_lock(toy_index):  # another writer is not stopped by the request in flight
        pass
    worker.join(timeout=20)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and re.search(message, outcome[0]), outcome
    assert served(toy_index) == before


FAILURES = [
    # (path, attempts, error, message, requests made)
    ("/api/query", 1, NotOnArxiv, r"^arXiv has no paper 2501\.99999$", 1),
    ("/no-id/api/query", 1, NotOnArxiv, r"^arXiv has no paper 2501\.99999$", 1),
    ("/status/404/api/query", 2, FetchError, r"HTTP 404", 1),  # permanent: not retried
    ("/status/500/api/query", 1, FetchError, r"giving up after 1 attempt: HTTP 500$", 1),
    # a wait longer than the caller allows is honoured by giving up at once
    ("/status/429/api/query", 2, Throttled, r"HTTP 429; the server asks to wait 120 s$", 1),
    ("/status/503/api/query", 2, Throttled, r"HTTP 503; the server asks to wait 30 s$", 1),
]


@pytest.mark.parametrize(("path", "attempts", "error", "message", "requests"), FAILURES)
def test_a_failed_fetch_says_why_in_one_line_and_changes_nothing(
        toy_index, fake_encoder, arxiv, path, attempts, error, message, requests):
    before = served(toy_index)
    with pytest.raises(error, match=message) as caught:
        add_arxiv_paper(toy_index, "2501.99999", fake_encoder, base_url=arxiv + path,
                        attempts=attempts)
    assert "\n" not in str(caught.value)
    if error is Throttled:
        assert caught.value.retry_after in (120, 30)
    assert len(FakeArxiv.log) == requests
    assert served(toy_index) == before
    assert not list((toy_index / "fetched").glob("*"))


def test_offline_is_unreachable(toy_index, fake_encoder):
    before = served(toy_index)
    with pytest.raises(Unreachable, match=r"cannot connect .*\(offline\?\)$"):
        add_arxiv_paper(toy_index, "1309.4668", fake_encoder, attempts=1,
                        base_url=f"http://127.0.0.1:{free_port()}/api/query")
    assert served(toy_index) == before


def test_a_transient_error_is_retried_once_after_a_pause(toy_index, fake_encoder, arxiv):
    started = time.monotonic()
    paper = add_arxiv_paper(toy_index, "1309.4668", fake_encoder, base_url=f"{arxiv}/flaky/api/query")
    assert paper.id == "1309.4668" and len(FakeArxiv.log) == 2
    assert time.monotonic() - started >= 3.0  # arXiv's 3 s between requests


def test_single_paper_requests_are_spaced_across_threads(toy_index, fake_encoder, arxiv,
                                                         monkeypatch):
    """Two app sessions pressing "Fetch and add" at once: one request per ARXIV_SPACING."""
    import threading

    from indexer import arxiv as arxiv_module
    from indexer.fetch import Polite, make_client

    monkeypatch.setattr(arxiv_module, "ARXIV_SPACING", 0.6)
    monkeypatch.setattr(arxiv_module, "_last_single", [float("-inf")])  # the first goes at once
    started = []

    def fetch(pid):
        with make_client() as client:
            started.append(time.monotonic())
            arxiv_module.fetch_arxiv_paper(Polite(client, interval=0), pid, f"{arxiv}/api/query")

    threads = [threading.Thread(target=fetch, args=(pid,)) for pid in ("1309.4668", "2206.06921")]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(FakeArxiv.log) == 2
    assert time.monotonic() - begun >= 0.6  # the second waited for the first
