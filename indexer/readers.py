"""Input readers: JSON Lines, CSV, BEIR corpus.jsonl, each optionally gzipped.

`read_papers(path)` yields a `Paper` for every good line and a `Problem` (FILE:LINE:
reason) for every bad one, so the caller decides whether to skip or stop.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from indexer.errors import PapersiftError
from indexer.records import Paper, paper_from_dict


@dataclass(frozen=True)
class Problem:
    """A line that could not be read as a paper."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def _open(path: Path) -> IO[bytes]:
    if path.is_dir():
        raise PapersiftError(f"{path} is a directory: give the paper files in it")
    if not path.exists():
        raise PapersiftError(f"{path}: no such file")
    if not path.is_file():
        raise PapersiftError(f"{path}: not a regular file")
    raw = path.open("rb")
    return gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw


def _is_csv(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.lower().endswith(".csv")


def read_papers(path: str | Path) -> Iterator[Paper | Problem]:
    """Yield papers and problems from one input file, in file order.

    Raises:
        PapersiftError: the file is missing or a directory, is not UTF-8 (CSV), has a CSV
            header that never closes its quote, or is a damaged gzip.
    """
    path = Path(path)
    reader = _read_csv if _is_csv(path) else _read_jsonl
    try:
        with _open(path) as stream:
            yield from reader(path, stream)
    except (OSError, EOFError, zlib.error) as e:
        raise PapersiftError(f"{path}: cannot read: {e}") from None


def _read_jsonl(path: Path, stream: IO[bytes]) -> Iterator[Paper | Problem]:
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield Problem(str(path), number, "not UTF-8 text")
            continue
        except json.JSONDecodeError as e:
            yield Problem(str(path), number, f"invalid JSON ({e.msg} at column {e.colno})")
            continue
        except ValueError:  # Python refuses integers of more than 4,300 digits
            yield Problem(str(path), number, "invalid JSON (a number of more than 4,300 digits)")
            continue
        except RecursionError:
            yield Problem(str(path), number, "JSON nested too deeply")
            continue
        yield _paper_or_problem(path, number, record)


class _Lines:
    """The lines of a text stream for `csv`, noting each row's first line and the end.

    `csv` reads past the last line only inside a quoted cell that is never closed; it then
    returns the rest of the file as one cell, silently. `exhausted` tells that apart.
    """

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self.number = 0
        self.row_start = 0  # the first non-blank line of the row being read
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._text)
        except StopIteration:
            self.exhausted = True
            raise
        self.number += 1
        if not self.row_start and line not in ("\n", "\r\n", "\r"):
            self.row_start = self.number
        return line


def _read_csv(path: Path, stream: IO[bytes]) -> Iterator[Paper | Problem]:
    lines = _Lines(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
    try:
        rows = csv.DictReader(lines)
        if rows.fieldnames is None:
            return
        if lines.exhausted:
            raise PapersiftError(f"{path}:1: the header row opens a quote that is never closed")
        for row in rows:
            start, lines.row_start = lines.row_start, 0  # a quoted cell may span several lines
            if lines.exhausted:
                yield Problem(str(path), start, "a quote opened in this row is never closed: "
                              f"lines {start}-{lines.number} (the rest of the file) not read")
                return
            record = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
            if None in row:
                yield Problem(str(path), start, "more cells than header columns")
                continue
            yield _paper_or_problem(path, start, record)
    except UnicodeDecodeError:
        raise PapersiftError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise PapersiftError(f"{path}: malformed CSV: {e}") from None


def _paper_or_problem(path: Path, number: int, record: object) -> Paper | Problem:
    try:
        return paper_from_dict(record)
    except ValueError as e:
        return Problem(str(path), number, str(e))
