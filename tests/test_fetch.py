"""Polite HTTP: spacing, retries, Retry-After, permanent errors; resumable output."""

import json

import httpx
import pytest

from indexer.fetch import FetchError, Polite, ResumableJsonl, Retryable, retry_after_seconds


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def polite_with(handler, **kwargs):
    t = FakeTime()
    client = httpx.Client(transport=httpx.MockTransport(handler))
    seen = []

    def recording(request):
        seen.append(t.now)
        return handler(request)

    client = httpx.Client(transport=httpx.MockTransport(recording))
    return Polite(client, sleep=t.sleep, clock=t.clock, **kwargs), t, seen


def test_requests_are_spaced_by_the_interval():
    polite, t, seen = polite_with(lambda r: httpx.Response(200, text="ok"), interval=3.0)
    for _ in range(4):
        polite.get("https://example.test/api")
    assert [b - a for a, b in zip(seen, seen[1:], strict=False)] == [3.0, 3.0, 3.0]


def test_503_with_retry_after_then_success():
    answers = iter([httpx.Response(503, headers={"Retry-After": "17"}), httpx.Response(200, text="ok")])
    polite, t, seen = polite_with(lambda r: next(answers), interval=3.0, backoff=1.0)
    assert polite.get("https://example.test/api").text == "ok"
    assert t.sleeps == [17.0]  # Retry-After beats the 1 s backoff
    assert seen[1] - seen[0] == 17.0


def test_429_and_timeouts_are_retried_with_growing_backoff():
    answers = iter(["429", "timeout", "500", "ok"])

    def handler(request):
        what = next(answers)
        if what == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200 if what == "ok" else int(what), text=what)

    polite, t, _ = polite_with(handler, interval=0.0, backoff=2.0)
    assert polite.get("https://example.test/api").text == "ok"
    assert t.sleeps == [2.0, 4.0, 8.0]


def test_gives_up_after_bounded_attempts():
    polite, t, seen = polite_with(lambda r: httpx.Response(503), interval=0.0, attempts=3, backoff=1)
    with pytest.raises(FetchError, match="giving up after 3 attempts: HTTP 503"):
        polite.get("https://example.test/api")
    assert len(seen) == 3


def test_permanent_errors_are_not_retried():
    polite, _, seen = polite_with(lambda r: httpx.Response(404, text="nope"), interval=0.0)
    with pytest.raises(FetchError, match="HTTP 404"):
        polite.get("https://example.test/api")
    assert len(seen) == 1


def test_bad_bodies_are_retried_through_the_check():
    bodies = iter(["<html>maintenance</html>", "good"])
    polite, _, seen = polite_with(lambda r: httpx.Response(200, text=next(bodies)),
                                  interval=0.0, backoff=1)

    def check(response):
        if response.text.startswith("<html"):
            raise Retryable("html")
        return response.text

    assert polite.get("https://example.test/api", check=check) == "good"
    assert len(seen) == 2


def test_retry_after_forms():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480 - 60) == 60
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_resumable_output_continues_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "papers.jsonl"
    job = {"source": "x", "q": 1}
    sink = ResumableJsonl(out)
    assert sink.begin(job) is None
    sink.checkpoint([{"id": "1"}, {"id": "2"}], {"page": 1})
    with sink.part.open("ab") as f:  # a page written but never checkpointed (killed)
        f.write(b'{"id": "3"}\n{"id": "4"')
    assert not out.exists()

    again = ResumableJsonl(out)
    assert again.begin(job) == {"page": 1}
    again.checkpoint([{"id": "3"}], {"page": 2})
    again.finish()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["1", "2", "3"]
    assert not again.cursor.exists() and not again.part.exists()

    other = ResumableJsonl(tmp_path / "other.jsonl")
    other.begin(job)
    other.checkpoint([{"id": "9"}], {"page": 1})
    fresh = ResumableJsonl(tmp_path / "other.jsonl")
    assert fresh.begin({"source": "x", "q": 2}) is None  # another job starts over
    assert fresh.part.read_bytes() == b""


# ---------------------------------------------------------------- no link followed, no FIFO opened


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


@pytest.mark.parametrize("name", ["out.jsonl.part", "out.jsonl.cursor.json", "out.jsonl"])
@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_begin_refuses_what_is_not_a_regular_file(tmp_path, victim, name, plant):
    import os

    odd = tmp_path / name
    {"symlink": lambda: odd.symlink_to(victim), "fifo": lambda: os.mkfifo(odd),
     "directory": odd.mkdir}[plant]()
    kind = {"symlink": "a symbolic link", "fifo": "not a regular file",
            "directory": "a directory"}[plant]
    with pytest.raises(FetchError, match=f"{name}: is {kind}; papersift writes fetched papers"):
        ResumableJsonl(tmp_path / "out.jsonl").begin({"source": "x"})  # a FIFO never blocks
    assert victim.read_text() == "precious"


def test_a_part_swapped_during_the_fetch_is_never_written_or_installed(tmp_path, victim):
    out = tmp_path / "out.jsonl"
    sink = ResumableJsonl(out)
    sink.begin({"source": "x"})
    sink.checkpoint([{"id": "1"}], {"page": 1})
    sink.part.rename(tmp_path / "moved-away")  # the file stays, so its inode is not reused
    sink.part.symlink_to(victim)
    with pytest.raises(FetchError, match="out.jsonl.part: is a symbolic link"):
        sink.checkpoint([{"id": "2"}], {"page": 2})
    with pytest.raises(FetchError, match="out.jsonl.part: was replaced during the fetch"):
        sink.finish()
    assert victim.read_text() == "precious" and not out.exists()
    sink.part.unlink()
    sink.part.write_text('{"id": "planted"}\n')  # another regular file: not ours either
    with pytest.raises(FetchError, match="is not the regular file this fetch writes"):
        sink.checkpoint([{"id": "2"}], {"page": 2})
    with pytest.raises(FetchError, match="was replaced during the fetch"):
        sink.finish()
    assert not out.exists()


def test_the_cursor_is_written_through_a_new_temp_file(tmp_path, victim):
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.cursor.json.tmp").symlink_to(victim)  # planted at the temp name
    sink = ResumableJsonl(out)
    sink.begin({"source": "x"})
    sink.checkpoint([{"id": "1"}], {"page": 1})
    assert victim.read_text() == "precious"
    assert json.loads(sink.cursor.read_text())["count"] == 1
    assert not (tmp_path / "out.jsonl.cursor.json.tmp").exists()


# ---------------------------------------------------------------- damaged cursors


def crashed_arxiv_fetch(tmp_path):
    """An arXiv fetch killed on its third page: OUT.part holds 20 records, a real cursor."""
    from tests.feeds import bundled_papers
    from tests.test_arxiv import FakeArxiv, run

    fake = FakeArxiv(bundled_papers(30), faults=[None, None, "crash"])
    with pytest.raises(KeyboardInterrupt):
        run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10)
    fake.faults, fake.calls = [], []
    return fake, run


def damage(cursor: dict, part_size: int):
    """Each way a cursor can be damaged (by a disk, an editor or a hostile user)."""
    def edit(**changes):
        return json.dumps({**cursor, **changes}).encode()

    state = cursor["state"]
    without_state = {k: v for k, v in cursor.items() if k != "state"}
    return {
        "offset -1": edit(offset=-1), "offset 'x'": edit(offset="x"),
        "offset true": edit(offset=True), "offset 1e12": edit(offset=10**12),
        "offset past the end": edit(offset=part_size + 1), "offset mid-line": edit(offset=5),
        "count 'x'": edit(count="x"), "count > offset": edit(count=part_size + 1),
        "no state": json.dumps(without_state).encode(), "state a list": edit(state=[1]),
        "start 'q'": edit(state={**state, "start": "q"}),
        "start -1": edit(state={**state, "start": -1}),
        "pending 'x'": edit(state={**state, "pending": "x"}),
        "window not a date": edit(state={**state, "pending": [["2025-13-01", "2026-01-01"]]}),
        "window reversed": edit(state={**state, "pending": [["2026-01-01", "2025-01-01"]]}),
        "a JSON list": b"[1, 2]", "not JSON": b"{", "not UTF-8": b"\xff\xfe",
        "deep nesting": b"[" * 100_000, "too large": b" " * (2 << 20),
    }


def test_every_damaged_cursor_means_starting_over_with_one_note(tmp_path, caplog):
    probe = tmp_path / "probe"
    probe.mkdir()
    crashed_arxiv_fetch(probe)
    cursor = json.loads((probe / "out.jsonl.cursor.json").read_text())
    part_size = (probe / "out.jsonl.part").stat().st_size
    assert cursor["offset"] == part_size and cursor["count"] == 20
    for case, text in damage(cursor, part_size).items():
        folder = tmp_path / case.replace(" ", "-").replace("'", "")
        folder.mkdir()
        fake, run = crashed_arxiv_fetch(folder)
        (folder / "out.jsonl.cursor.json").write_bytes(text)
        caplog.clear()
        count, records = run(fake, folder, since="2025-01-01", until="2026-12-31", page_size=10)
        assert count == 30 and len({r["id"] for r in records}) == 30, case
        assert [s for _, s in fake.calls] == [0, 10, 20], case  # from the start
        notes = [r.getMessage() for r in caplog.records]
        assert len(notes) == 1 and "damaged fetch cursor" in notes[0], (case, notes)
        assert notes[0].endswith("starting the fetch over") and "\n" not in notes[0]
        assert (folder / "out.jsonl").stat().st_size < 100_000, case  # no sparse giant


def test_a_sound_cursor_without_its_part_starts_over_silently(tmp_path, caplog):
    fake, run = crashed_arxiv_fetch(tmp_path)
    (tmp_path / "out.jsonl.part").unlink()
    caplog.clear()
    count, _ = run(fake, tmp_path, since="2025-01-01", until="2026-12-31", page_size=10)
    assert count == 30 and caplog.records == []


@pytest.mark.parametrize(("source", "state"), [
    ("hf", {"page": "x"}), ("hf", {"page": -2}), ("hf", {}), ("oai", {"token": 5, "started": True}),
    ("oai", {"token": None, "started": "yes"}),
])
def test_hf_and_oai_cursors_are_checked_too(tmp_path, caplog, source, state):
    from indexer.arxiv import fetch_oai
    from indexer.hf import fetch_hf

    out = tmp_path / "out.jsonl"
    planted = ResumableJsonl(out)
    planted.begin({"source": source})
    planted.checkpoint([{"id": "1"}], state)
    empty = {"hf": httpx.Response(200, json=[]),
             "oai": httpx.Response(200, text='<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
                                               '<error code="noRecordsMatch"/></OAI-PMH>')}[source]
    polite, _, seen = polite_with(lambda r: empty, interval=0.0)
    fetch = {"hf": lambda sink: fetch_hf(polite, sink, date="2026-07-24"),
             "oai": lambda sink: fetch_oai(polite, sink)}[source]
    caplog.clear()
    assert fetch(ResumableJsonl(out)) == 0 and out.read_bytes() == b""
    assert len(seen) == 1
    (note,) = [r.getMessage() for r in caplog.records]
    assert "damaged fetch cursor (state does not fit this source)" in note


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://[::1", "gopher://example.test/"])
def test_an_unusable_url_is_permanent_not_retried(url):
    t = FakeTime()
    polite = Polite(httpx.Client(), sleep=t.sleep, clock=t.clock)  # no request leaves
    with pytest.raises(FetchError, match="not a usable http\\(s\\) URL"):
        polite.get(url)
    assert t.sleeps == [] and polite.requests == 1
