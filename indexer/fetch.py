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
import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import tenacity

from indexer import __version__
from indexer.errors import PapersiftError
from indexer.files import odd_file

log = logging.getLogger(__name__)

USER_AGENT = f"papersift/{__version__} (local-first paper search; polite client)"
RETRY_STATUS = {429, 500, 502, 503, 504}
THROTTLE_STATUS = {429, 503}  # how arXiv and Hugging Face say "slow down"


class FetchError(PapersiftError):
    """A source that could not be fetched (after retries, or a permanent error)."""


class Throttled(FetchError):
    """The service kept throttling (HTTP 429 or 503), or asked for a longer wait than the
    caller allows. `retry_after`: its last Retry-After in seconds (None: it gave none)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(FetchError):
    """No connection to the service at all: offline, refused, or a host that is unknown."""


class Retryable(Exception):
    """A transient failure: throttling, a server error, a timeout or a damaged body.

    `status` is the HTTP status that caused it, `unreachable` says no connection was made.
    """

    def __init__(self, reason: str, retry_after: float | None = None, *,
                 status: int | None = None, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status
        self.unreachable = unreachable

    def giving_up(self, url: str, attempts: int) -> FetchError:
        """The error to raise when no attempt is left (or the wait asked is too long)."""
        message = f"{url}: giving up after {attempts} attempt{'' if attempts == 1 else 's'}: {self}"
        if self.status in THROTTLE_STATUS:
            wait = (f"; the server asks to wait {self.retry_after:.0f} s"
                    if self.retry_after is not None else "")
            return Throttled(message + wait, self.retry_after)
        if self.unreachable:
            return Unreachable(message + " (offline?)")
        return FetchError(message)


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
        max_bytes, max_seconds: a bound on one answer's size and on the whole time to
            receive it (a server trickling bytes never trips a per-read timeout); None:
            unbounded. Used where a person waits on one request.
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
        max_bytes: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
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
            FetchError: a permanent HTTP error, or still failing after every attempt:
                Throttled for HTTP 429/503 (also at once when its Retry-After exceeds
                `max_wait`), Unreachable when no connection could be made.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._worth_retrying),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._get_once, url, params, check)
        except Retryable as e:
            raise e.giving_up(url, retrying.statistics.get("attempt_number", 1)) from None

    def _worth_retrying(self, error: BaseException) -> bool:
        """A transient failure, unless the server asks for a longer wait than `max_wait`:
        that is honoured by giving up (Throttled says how long), not by asking early."""
        return isinstance(error, Retryable) and (error.retry_after or 0.0) <= self.max_wait

    def _get_once(self, url, params, check):
        self._wait_turn()
        self.requests += 1
        try:
            response = (self.client.get(url, params=params)
                        if self.max_bytes is None and self.max_seconds is None
                        else self._bounded_get(url, params))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:  # no retry can mend a URL
            raise FetchError(f"{url}: not a usable http(s) URL ({e})") from None
        except httpx.TimeoutException as e:
            raise Retryable(f"timed out ({type(e).__name__})") from None
        except httpx.ConnectError as e:
            raise Retryable(f"cannot connect ({e})", unreachable=True) from None
        except httpx.TransportError as e:
            raise Retryable(f"connection failed ({e})") from None
        if response.status_code in RETRY_STATUS:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise Retryable(f"HTTP {response.status_code}", retry_after=wait,
                            status=response.status_code)
        if response.status_code >= 400:
            raise FetchError(f"{response.url}: HTTP {response.status_code}: "
                             f"{response.text[:200].strip()}")
        return check(response) if check else response

    def _bounded_get(self, url, params) -> httpx.Response:
        started = self.clock()
        with self.client.stream("GET", url, params=params) as streamed:
            chunks, size = [], 0
            for chunk in streamed.iter_bytes():
                size += len(chunk)
                if self.max_bytes is not None and size > self.max_bytes:
                    raise FetchError(f"{url}: the answer is over {self.max_bytes:,} bytes")
                if self.max_seconds is not None and self.clock() - started > self.max_seconds:
                    raise _too_slow(url, self.max_seconds)
                chunks.append(chunk)
            return httpx.Response(streamed.status_code, headers=streamed.headers,
                                  content=b"".join(chunks), request=streamed.request)


def _too_slow(url: str, seconds: float) -> FetchError:
    return FetchError(f"{url}: no complete answer within {seconds:g} s")


def looks_like_html(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "")
    head = response.content[:200].lstrip().lower()
    return "text/html" in kind or head.startswith((b"<!doctype html", b"<html"))


class ResumableJsonl:
    """A fetch's output: records appended to `OUT.part`, a cursor in `OUT.cursor.json`.

    `begin(job)` returns the saved state when an earlier run of the same job was cut
    short (its partial output is kept, up to the last checkpoint); `checkpoint(records,
    state)` appends a page and saves the cursor; `finish()` renames the output into place.

    No symbolic link is followed and nothing but a regular file is opened: `OUT.part` is
    opened with O_NOFOLLOW (and must stay the file this fetch created), the cursor is
    written through an O_EXCL temp file, and a symlink, FIFO or folder at `OUT`,
    `OUT.part` or `OUT.cursor.json` is refused with a `FetchError`. A damaged cursor
    (not the JSON this class writes, or an offset that does not fit `OUT.part`) means
    starting over, with a one-line warning.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.part = self.out.with_name(self.out.name + ".part")
        self.cursor = self.out.with_name(self.out.name + ".cursor.json")
        self.count = 0
        self._inode: tuple[int, int] | None = None  # (device, inode) of the .part we own

    def begin(self, job: Mapping[str, Any],
              state_ok: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        """Start or resume `job`; returns the saved state to resume from, or None.

        Args:
            job: what is fetched (source, URL, options); another job's cursor is ignored.
            state_ok: whether a saved state has the shape this source's fetcher writes;
                a cursor failing it is damaged.

        Raises:
            FetchError: OUT, OUT.part or OUT.cursor.json is not a regular file.
        """
        self.out.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.out, self.part, self.cursor):
            _refuse_odd(path)
        self._job = dict(job)
        saved = self._resume(state_ok or (lambda state: True))
        if saved is not None:
            return saved
        self.cursor.unlink(missing_ok=True)  # never a cursor beside another job's output
        self._inode = None
        os.close(self._open_part(os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        self.count = 0
        return None

    def _resume(self, state_ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The saved state when the cursor is sound, fits OUT.part and is this job's."""
        data = self._read_cursor()
        if data is None or not self.part.exists():
            return None
        saved, why = _parse_cursor(data, state_ok)
        fd = self._open_part(os.O_RDWR)
        try:
            why = why or _offset_problem(fd, saved["offset"], self.part)
            if why:
                log.warning("%s: damaged fetch cursor (%s); starting the fetch over",
                            self.cursor, why)
                return None
            if saved["job"] != self._job:
                return None  # another job's cursor: start over, silently
            os.ftruncate(fd, saved["offset"])  # drop a page written after the last checkpoint
        finally:
            os.close(fd)
        self.count = saved["count"]
        log.warning("resuming an interrupted fetch: %d records already saved", self.count)
        return saved["state"]

    def _read_cursor(self) -> bytes | None:
        """The cursor file's bytes (at most MAX_CURSOR + 1), None when there is none."""
        try:
            fd = os.open(self.cursor, os.O_RDONLY | _NO_FOLLOW)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise FetchError(f"{self.cursor}: cannot read ({e.strerror or e})") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FetchError(f"{self.cursor}: is not a regular file; remove it")
            return f.read(MAX_CURSOR + 1)

    def _open_part(self, flags: int) -> int:
        """A descriptor of OUT.part, never through a symlink, only a regular file, and
        (once created) only the very file this fetch created."""
        try:
            fd = os.open(self.part, flags | _NO_FOLLOW, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise FetchError(f"{self.part}: is a symbolic link; remove it (papersift "
                                 "never writes through one)") from None
            raise FetchError(f"{self.part}: cannot open ({e.strerror or e})") from None
        info = os.fstat(fd)
        inode = (info.st_dev, info.st_ino)
        if not stat.S_ISREG(info.st_mode) or self._inode not in (None, inode):
            os.close(fd)
            raise FetchError(f"{self.part}: is not the regular file this fetch writes; "
                             "remove it and fetch again")
        self._inode = inode
        return fd

    def checkpoint(self, records: Iterable[Mapping[str, Any]], state: Mapping[str, Any]) -> None:
        with os.fdopen(self._open_part(os.O_WRONLY | os.O_APPEND), "ab") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
                self.count += 1
            f.flush()
            os.fsync(f.fileno())
            offset = f.seek(0, os.SEEK_END)
        cursor = {"job": self._job, "state": dict(state), "offset": offset, "count": self.count}
        tmp = self.cursor.with_name(self.cursor.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a leftover (or planted link) is removed, never written through
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(cursor))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.cursor)

    def finish(self) -> Path:
        """Rename OUT.part to OUT, only if it is still the regular file this fetch wrote."""
        info = os.lstat(self.part)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != self._inode:
            raise FetchError(f"{self.part}: was replaced during the fetch; fetch again")
        _refuse_odd(self.out)
        os.replace(self.part, self.out)
        self.cursor.unlink(missing_ok=True)
        return self.out


MAX_CURSOR = 1 << 20  # bytes; a cursor holds a job, a few date windows or a token
_NO_FOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO never blocks


def _refuse_odd(path: Path) -> None:
    """Raise FetchError when `path` exists and is not a regular file (link, FIFO, folder)."""
    try:
        _, kind = odd_file(path)
    except OSError as e:
        raise FetchError(f"{path}: cannot use ({e.strerror or e})") from None
    if kind:
        raise FetchError(f"{path}: is {kind}; papersift writes fetched papers only to regular "
                         "files (remove it or choose another --out)")


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 0


def _parse_cursor(data: bytes, state_ok: Callable[[dict[str, Any]], bool]
                  ) -> tuple[dict[str, Any] | None, str]:
    """The cursor as a dict and '' when it has the shape `checkpoint` writes; else None
    and what is wrong, in a few words."""
    if len(data) > MAX_CURSOR:
        return None, f"larger than {MAX_CURSOR} bytes"
    try:
        saved = json.loads(data)
    except (ValueError, RecursionError):
        return None, "not JSON"
    if not isinstance(saved, dict):
        return None, "not a JSON object"
    for key, ok in (("job", isinstance(saved.get("job"), dict)),
                    ("offset", _whole(saved.get("offset"))),
                    ("count", _whole(saved.get("count"))),
                    ("state", isinstance(saved.get("state"), dict))):
        if not ok:
            return None, f"{key} missing or of the wrong type"
    if saved["count"] > saved["offset"] or (saved["count"] == 0) != (saved["offset"] == 0):
        return None, "count does not fit offset"
    try:
        good = state_ok(saved["state"])
    except (TypeError, ValueError, KeyError, AttributeError):
        good = False
    return (saved, "") if good else (None, "state does not fit this source")


def _offset_problem(fd: int, offset: int, part: Path) -> str:
    """'' when `offset` is the end of a whole line inside the partial output, else why not."""
    size = os.fstat(fd).st_size
    if offset > size:
        return f"offset {offset} is beyond the {size} bytes of {part.name}"
    if offset and os.pread(fd, 1, offset - 1) != b"\n":
        return f"offset {offset} is not the end of a line of {part.name}"
    return ""
