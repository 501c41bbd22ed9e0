"""Polite HTTP and resumable output, shared by the arXiv, OAI-PMH and Hugging Face fetchers.

`Polite` spaces requests on one `httpx.Client` (arXiv asks for one every 3 s), retries
throttling, server errors, timeouts and bad bodies with backoff that honours Retry-After,
and gives up after a bounded number of attempts. `ResumableJsonl` writes a fetch's output
atomically and keeps a cursor beside it, so an interrupted fetch continues where it stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import tenacity

from indexer import __version__
from indexer.errors import PapersiftError

log = logging.getLogger(__name__)

USER_AGENT = f"papersift/{__version__} (local-first paper search; polite client)"
RETRY_STATUS = {429, 500, 502, 503, 504}


class FetchError(PapersiftError):
    """A source that could not be fetched (after retries, or a permanent error)."""


class Retryable(Exception):
    """A transient failure: throttling, a server error, a timeout or a damaged body."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def make_client(timeout: float = 60.0, headers: Mapping[str, str] | None = None) -> httpx.Client:
    """One connection-reusing client with papersift's User-Agent and a timeout."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=15.0),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now())


class Polite:
    """Spaced, retried GET requests.

    Args:
        client: the httpx.Client to use (tests pass one with a MockTransport).
        interval: minimum seconds between the starts of two requests.
        attempts: tries per request before giving up.
        backoff: first retry wait in seconds, doubled each time (capped at `max_wait`).
        sleep, clock: injectable for tests.
    """

    def __init__(
        self,
        client: httpx.Client,
        interval: float = 3.0,
        attempts: int = 6,
        backoff: float = 5.0,
        max_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.interval = interval
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self._last: float | None = None
        self.requests = 0

    def _wait_turn(self) -> None:
        if self._last is not None:
            wait = self._last + self.interval - self.clock()
            if wait > 0:
                self.sleep(wait)
        self._last = self.clock()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        exponential = min(self.max_wait, self.backoff * 2 ** (state.attempt_number - 1))
        hinted = getattr(error, "retry_after", None)
        return min(self.max_wait, max(exponential, hinted or 0.0))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying in %.0f s (attempt %d of %d): %s", state.upcoming_sleep,
                    state.attempt_number + 1, self.attempts, error)

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        check: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """GET `url`; returns `check(response)` (or the response when no check is given).

        `check` raises `Retryable` for a body that must be fetched again.

        Raises:
            FetchError: a permanent HTTP error, or still failing after every attempt.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(Retryable),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._get_once, url, params, check)
        except Retryable as e:
            raise FetchError(f"{url}: giving up after {self.attempts} attempts: {e}") from None

    def _get_once(self, url, params, check):
        self._wait_turn()
        self.requests += 1
        try:
            response = self.client.get(url, params=params)
        except httpx.TimeoutException as e:
            raise Retryable(f"timed out ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise Retryable(f"connection failed ({e})") from None
        if response.status_code in RETRY_STATUS:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise Retryable(f"HTTP {response.status_code}", retry_after=wait)
        if response.status_code >= 400:
            raise FetchError(f"{response.url}: HTTP {response.status_code}: "
                             f"{response.text[:200].strip()}")
        return check(response) if check else response


def looks_like_html(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "")
    head = response.content[:200].lstrip().lower()
    return "text/html" in kind or head.startswith((b"<!doctype html", b"<html"))


class ResumableJsonl:
    """A fetch's output: records appended to `OUT.part`, a cursor in `OUT.cursor.json`.

    `begin(job)` returns the saved state when an earlier run of the same job was cut
    short (its partial output is kept, up to the last checkpoint); `checkpoint(records,
    state)` appends a page and saves the cursor; `finish()` renames the output into place.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.part = self.out.with_name(self.out.name + ".part")
        self.cursor = self.out.with_name(self.out.name + ".cursor.json")
        self.count = 0

    def begin(self, job: Mapping[str, Any]) -> dict[str, Any] | None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        saved = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = json.loads(self.cursor.read_text())
        if saved and saved.get("job") == dict(job) and self.part.exists():
            with self.part.open("r+b") as f:
                f.truncate(saved["offset"])  # drop a page written after the last checkpoint
            self.count = saved["count"]
            log.warning("resuming an interrupted fetch: %d records already saved", self.count)
            self._job = dict(job)
            return saved["state"]
        self.part.write_bytes(b"")
        self._job = dict(job)
        return None

    def checkpoint(self, records: Iterable[Mapping[str, Any]], state: Mapping[str, Any]) -> None:
        with self.part.open("ab") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
                self.count += 1
            f.flush()
            os.fsync(f.fileno())
            offset = f.tell()
        cursor = {"job": self._job, "state": dict(state), "offset": offset, "count": self.count}
        tmp = self.cursor.with_name(self.cursor.name + ".tmp")
        tmp.write_text(json.dumps(cursor))
        os.replace(tmp, self.cursor)

    def finish(self) -> Path:
        os.replace(self.part, self.out)
        self.cursor.unlink(missing_ok=True)
        return self.out
