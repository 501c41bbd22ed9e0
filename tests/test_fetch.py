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
