"""arXiv API and OAI-PMH parsing and paging, on recorded answers and MockTransport."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from indexer.arxiv import fetch_arxiv, fetch_oai, parse_feed, parse_oai, search_query
from indexer.fetch import FetchError, Polite, ResumableJsonl, Retryable
from tests.feeds import atom_page, bundled_papers, oai_page

FIXTURES = Path(__file__).parent / "fixtures"


def response(body: bytes, status=200, kind="application/atom+xml") -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": kind},
                          request=httpx.Request("GET", "https://export.arxiv.org/api/query"))


def test_classic_layout():
    page = parse_feed(response((FIXTURES / "arxiv_query_classic.xml").read_bytes()), 0)
    (record,) = page.records
    assert page.total == 1
    assert record["id"] == "2206.06921" and record["version"] == 3
    assert record["title"] == "Attainable forms of Assouad spectra"
    assert record["categories"] == ["math.CA", "math.DS"]  # the MSC class is dropped
    assert record["primary_category"] == "math.CA"
    assert record["authors"] == ["Alex Rutar"]
    assert record["published"] == "2022-06-14"
    assert record["doi"] == "10.1512/iumj.2024.73.9928"
    assert record["url"] == "https://arxiv.org/abs/2206.06921"


def test_november_2025_layout():
    page = parse_feed(response((FIXTURES / "arxiv_query_2025_11.xml").read_bytes()), 0)
    (record,) = page.records
    assert page.total == 7432
    assert (record["id"], record["version"]) == ("1309.4668", 1)
    assert record["authors"] == ["A. Pertica", "S. J. Payne"]
    assert record["primary_category"] == "physics.acc-ph"
    assert record["categories"] == ["physics.acc-ph"]


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        ((FIXTURES / "arxiv_error.xml").read_bytes(), "application/atom+xml",
         "arXiv API error: incorrect id format"),
        ((FIXTURES / "arxiv_query_2025_11.xml").read_bytes()[:1500], "application/atom+xml",
         "damaged Atom feed"),
        (b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "text/html", "HTML page"),
        (b"Rate exceeded.", "text/plain", "damaged Atom feed"),
        (atom_page([], total=50, start=20), "application/atom+xml", "empty page at 20 of 50"),
    ],
)
def test_bad_answers_are_retryable(body, kind, reason):
    with pytest.raises(Retryable, match=reason):
        parse_feed(response(body, kind=kind), 20)


def test_empty_last_page_is_the_end():
    assert parse_feed(response(atom_page([], total=20, start=20)), 20).records == []


def test_search_query():
    assert search_query(["cs.CL", "cs.LG"], "2026-01-01", "2026-01-31", 'ti:"diffusion"') == (
        '(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202601010000 TO 202601312359] '
        'AND (ti:"diffusion")')
    assert search_query(["cs.CL"], "", "", "") == "cat:cs.CL"
    with pytest.raises(FetchError, match="needs --category"):
        search_query([], "", "", "")


class FakeArxiv:
    """Serves `papers` sorted by date; windows come from the submittedDate clause."""

    def __init__(self, papers, faults=()):
        self.papers = sorted(papers, key=lambda p: p["listing_date"])
        self.faults = list(faults)
        self.calls = []

    def __call__(self, request):
        q = parse_qs(urlsplit(str(request.url)).query)
        start, size = int(q["start"][0]), int(q["max_results"][0])
        self.calls.append((q["search_query"][0], start))
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "503":
                return httpx.Response(503, headers={"Retry-After": "1"})
            if fault == "crash":
                raise KeyboardInterrupt
        query = q["search_query"][0]
        matching = self.papers
        if "submittedDate:[" in query:
            lo, hi = query.split("submittedDate:[")[1].split("]")[0].split(" TO ")
            lo, hi = f"{lo[:4]}-{lo[4:6]}-{lo[6:8]}", f"{hi[:4]}-{hi[4:6]}-{hi[6:8]}"
            matching = [p for p in matching if lo <= p["listing_date"] <= hi]
        return httpx.Response(200, content=atom_page(matching[start:start + size], len(matching), start))


def run(fake, tmp_path, **kwargs):
    t = {"sleeps": []}
    polite = Polite(httpx.Client(transport=httpx.MockTransport(fake)), interval=0,
                    backoff=0.01, sleep=t["sleeps"].append)
    out = tmp_path / "out.jsonl"
    count = fetch_arxiv(polite, ResumableJsonl(out), categories=("cs.CL",), **kwargs)
    return count, [json.loads(line) for line in out.read_text().splitlines()]


def test_pages_through_every_result(tmp_path):
    papers = bundled_papers(45)
    fake = FakeArxiv(papers, faults=["503"])
    count, records = run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10)
    assert count == 45 and sorted(r["id"] for r in records) == sorted(p["id"] for p in papers)
    assert [s for _, s in fake.calls] == [0, 0, 10, 20, 30, 40]  # the 503 was retried


def test_windows_split_above_the_per_query_cap(tmp_path):
    papers = bundled_papers(60)
    fake = FakeArxiv(papers)
    count, records = run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10,
                         max_per_query=25)
    assert count == 60 and len({r["id"] for r in records}) == 60
    windows = {query.split("submittedDate:")[1] for query, _ in fake.calls}
    assert len(windows) > 2


def test_interrupted_fetch_resumes_without_duplicates(tmp_path):
    papers = bundled_papers(30)
    fake = FakeArxiv(papers, faults=[None, None, "crash"])
    fake.faults = [f for f in fake.faults]
    with pytest.raises(KeyboardInterrupt):
        run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10)
    assert not (tmp_path / "out.jsonl").exists()
    fake.faults = []
    count, records = run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10)
    assert count == 30 and len({r["id"] for r in records}) == 30
    assert [s for _, s in fake.calls][-2:] == [20, 20]  # the crashed page, asked again


def test_oai_harvest_follows_resumption_tokens(tmp_path):
    papers = bundled_papers(25)
    pages = {None: oai_page(papers[:10], "t1", deleted=("2101.00001",)),
             "t1": oai_page(papers[10:20], "t2"), "t2": oai_page(papers[20:], None)}
    seen = []

    def handler(request):
        q = parse_qs(urlsplit(str(request.url)).query)
        seen.append(q)
        return httpx.Response(200, content=pages[q.get("resumptionToken", [None])[0]])

    polite = Polite(httpx.Client(transport=httpx.MockTransport(handler)), interval=0)
    out = tmp_path / "oai.jsonl"
    assert fetch_oai(polite, ResumableJsonl(out), set_spec="cs", since="2025-03-01") == 25
    assert seen[0] == {"verb": ["ListRecords"], "metadataPrefix": ["arXiv"], "set": ["cs"],
                       "from": ["2025-03-01"]}
    assert seen[1] == {"verb": ["ListRecords"], "resumptionToken": ["t1"]}
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"] == papers[0]["id"] and first["authors"] == papers[0]["authors"]
    assert first["categories"] == papers[0]["categories"]


def test_oai_errors():
    no_records = (b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
                  b'<error code="noRecordsMatch">none</error></OAI-PMH>')
    assert parse_oai(response(no_records, kind="text/xml")) == ([], None)
    bad = no_records.replace(b"noRecordsMatch", b"badResumptionToken")
    with pytest.raises(FetchError, match="badResumptionToken"):
        parse_oai(response(bad, kind="text/xml"))
    with pytest.raises(Retryable, match="damaged OAI-PMH XML"):
        parse_oai(response(oai_page(bundled_papers(2), None)[:300], kind="text/xml"))
