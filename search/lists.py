"""Reading lists: named sets of papers kept in one per-user SQLite database.

The database lives beside the indexes, never inside a generation, so rebuilds and updates
never touch it. Each item keeps a snapshot of the paper's metadata, so a list still
exports after the paper left the index. Export is BibTeX (`@misc` with `eprint`,
`archivePrefix = {arXiv}`, `primaryClass`) or CSV; a BibTeX file can be imported to make
a list, its entries matched to the index by arXiv id, arXiv DOI or title.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import sqlite3
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import PapersiftError
from indexer.files import odd_file
from indexer.records import Paper, canonical_id, is_arxiv_id

SCHEMA_VERSION = 1
MAX_NAME = 80
_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    paper_id TEXT NOT NULL,
    added TEXT NOT NULL,
    paper TEXT NOT NULL,
    PRIMARY KEY (list_id, paper_id)
);
"""
CSV_COLUMNS = ("id", "title", "authors", "published", "primary_category", "categories", "url",
               "added")


class ListError(PapersiftError):
    """A reading-list operation the user must correct (unknown list, bad name, bad file)."""


class ListStoreError(ListError):
    """The reading-list database itself failed (cannot open, locked, a newer schema): not
    the request's fault (the HTTP API answers 503)."""


@dataclass(frozen=True)
class ListItem:
    paper: Paper
    added: str


@dataclass(frozen=True)
class ReadingList:
    name: str
    created: str
    count: int


def check_name(name: str) -> str:
    """A list name: 1-80 printable characters, surrounding spaces removed."""
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ListError("a list name must not be empty")
    if len(cleaned) > MAX_NAME:
        raise ListError(f"list name {cleaned[:20]!r}… is longer than {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ListError(f"list name {cleaned!r} contains control characters")
    return cleaned


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _snapshot(paper: Paper) -> str:
    return json.dumps({
        "id": paper.id, "title": paper.title, "authors": list(paper.authors),
        "categories": list(paper.categories), "primary_category": paper.primary_category,
        "published": paper.published, "url": paper.url,
    }, ensure_ascii=False)


def _from_snapshot(text: str) -> Paper:
    d = json.loads(text)
    return Paper(id=d["id"], title=d.get("title", ""), abstract="",
                 authors=tuple(d.get("authors", ())), categories=tuple(d.get("categories", ())),
                 primary_category=d.get("primary_category", ""),
                 published=d.get("published", ""), url=d.get("url", ""))


class ReadingLists:
    """The reading-list database at `path` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as e:
            raise ListStoreError(f"{self.path}: cannot open the reading-list database ({e})") from None
        try:
            db.execute("PRAGMA foreign_keys = ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ListStoreError(f"{self.path}: reading lists of schema {version}, this "
                                     f"papersift reads {SCHEMA_VERSION}")
            if version < SCHEMA_VERSION:
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
            with db:  # one transaction: all of a change or none of it
                yield db
        except sqlite3.DatabaseError as e:
            raise ListStoreError(f"{self.path}: {e}") from None
        finally:
            db.close()

    def _list_id(self, db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM lists WHERE name = ?", (check_name(name),)).fetchone()
        if row is None:
            known = [r[0] for r in db.execute("SELECT name FROM lists ORDER BY name")]
            hint = f" (lists: {', '.join(known)})" if known else " (there are no lists yet)"
            raise ListError(f"no reading list named {name!r}{hint}")
        return row[0]

    def lists(self) -> list[ReadingList]:
        if not self.path.exists():  # reading never creates the database
            return []
        with self._db() as db:
            rows = db.execute(
                "SELECT l.name, l.created, count(i.paper_id) FROM lists l "
                "LEFT JOIN items i ON i.list_id = l.id GROUP BY l.id ORDER BY l.name").fetchall()
        return [ReadingList(*r) for r in rows]

    def create(self, name: str, exist_ok: bool = False) -> str:
        name = check_name(name)
        with self._db() as db:
            try:
                db.execute("INSERT INTO lists (name, created) VALUES (?, ?)", (name, _now()))
            except sqlite3.IntegrityError:
                if not exist_ok:
                    raise ListError(f"a reading list named {name!r} exists already") from None
        return name

    def delete(self, name: str) -> int:
        """Delete a list and its items; returns how many papers it held."""
        with self._db() as db:
            list_id = self._list_id(db, name)
            n = db.execute("SELECT count(*) FROM items WHERE list_id = ?", (list_id,)).fetchone()[0]
            db.execute("DELETE FROM lists WHERE id = ?", (list_id,))
        return n

    def rename(self, name: str, new_name: str) -> str:
        new_name = check_name(new_name)
        with self._db() as db:
            list_id = self._list_id(db, name)
            try:
                db.execute("UPDATE lists SET name = ? WHERE id = ?", (new_name, list_id))
            except sqlite3.IntegrityError:
                raise ListError(f"a reading list named {new_name!r} exists already") from None
        return new_name

    def add(self, name: str, papers: Iterable[Paper], create: bool = True) -> int:
        """Add papers (already present ones are refreshed); returns how many were new."""
        papers = list(papers)
        if create:
            self.create(name, exist_ok=True)
        with self._db() as db:
            list_id = self._list_id(db, name)
            before = db.execute("SELECT count(*) FROM items WHERE list_id = ?",
                                (list_id,)).fetchone()[0]
            now = _now()
            db.executemany(
                "INSERT INTO items (list_id, paper_id, added, paper) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (list_id, paper_id) DO UPDATE SET paper = excluded.paper",
                [(list_id, p.id, now, _snapshot(p)) for p in papers])
            after = db.execute("SELECT count(*) FROM items WHERE list_id = ?",
                               (list_id,)).fetchone()[0]
        return after - before

    def remove(self, name: str, paper_ids: Sequence[str]) -> int:
        """Remove papers by id; returns how many were in the list."""
        with self._db() as db:
            list_id = self._list_id(db, name)
            gone = 0
            for pid in paper_ids:
                gone += db.execute("DELETE FROM items WHERE list_id = ? AND paper_id = ?",
                                   (list_id, canonical_id(pid))).rowcount
        return gone

    def items(self, name: str) -> list[ListItem]:
        """The list's papers (metadata as saved), oldest addition first."""
        if not self.path.exists():
            raise ListError(f"no reading list named {check_name(name)!r} (there are no lists yet)")
        with self._db() as db:
            list_id = self._list_id(db, name)
            rows = db.execute("SELECT paper, added FROM items WHERE list_id = ? "
                              "ORDER BY added, rowid", (list_id,)).fetchall()
        return [ListItem(_from_snapshot(p), added) for p, added in rows]

    def memberships(self, paper_ids: Sequence[str]) -> dict[str, list[str]]:
        """For each of these papers held by a list, the names of its lists (one query)."""
        found: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(paper_ids))
        if not ids or not self.path.exists():
            return found
        with self._db() as db:
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                marks = ",".join("?" * len(chunk))
                for pid, name in db.execute(
                        "SELECT i.paper_id, l.name FROM items i JOIN lists l ON l.id = i.list_id "
                        f"WHERE i.paper_id IN ({marks}) ORDER BY l.name", chunk):
                    found.setdefault(pid, []).append(name)
        return found

    def containing(self, paper_id: str) -> list[str]:
        """Names of the lists that hold this paper."""
        return self.memberships([paper_id]).get(paper_id, [])


# ---------------------------------------------------------------- export


# LaTeX commands a title or author may keep: letters, accents, math and text formatting.
# Anything else (\input, \write18, \def, \catcode, \csname ...) is written as text.
_SAFE_COMMAND_NAMES = """
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi
pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta
Lambda Xi Pi Sigma Upsilon Phi Psi Omega
sqrt frac dfrac tfrac mathcal mathbb mathbf mathrm mathit mathsf mathtt mathfrak boldsymbol
bm operatorname text textrm ell infty partial nabla leq le geq ge neq ne approx sim simeq
equiv propto times cdot cdots ldots dots vdots ddots pm mp to rightarrow leftarrow
Rightarrow Leftarrow leftrightarrow mapsto in notin subset subseteq supset supseteq cup cap
setminus emptyset forall exists neg land lor wedge vee oplus otimes circ star ast log ln exp
sin cos tan max min arg sup inf lim sum prod int mid parallel perp hat tilde bar vec dot ddot
widehat widetilde overline underline left right big Big bigl bigr langle rangle lfloor
rfloor lceil rceil ll gg prime top quad qquad
textbf textit texttt textsc textsf textsl emph mbox LaTeX TeX textendash textemdash
textquoteright textquoteleft textbackslash textasciicircum textasciitilde dag ddag copyright
c v u H r k d b t i j l L o O ss ae AE oe OE aa AA
"""
_SAFE_COMMANDS = frozenset(_SAFE_COMMAND_NAMES.split())
_BIB_TOKEN = re.compile(r"\\([a-zA-Z]+|[^a-zA-Z]?)|([&%#_])", re.DOTALL)


def _bib_token(match: re.Match[str]) -> str:
    if match.group(2):  # a LaTeX special written bare: make it literal
        return "\\" + match.group(2)
    name = match.group(1)
    if name and (name in _SAFE_COMMANDS or not name[0].isalpha()):
        return match.group(0)  # a known command, or a control symbol such as \& \' \,
    return r"\textbackslash{}" + name  # \input, \write18, a trailing lone backslash ...


def _bib_text(text: str) -> str:
    """A value safe inside BibTeX braces and inert to LaTeX.

    LaTeX specials are escaped, only the commands in _SAFE_COMMANDS stay commands, no `^^`
    (TeX's notation for any character, a backslash included) survives, braces are balanced.
    """
    text = _BIB_TOKEN.sub(_bib_token, " ".join(text.split()))
    text = re.sub(r"\^{2,}", lambda m: r"\textasciicircum{}" * len(m.group()), text)
    depth, kept = 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                continue
            depth -= 1
        kept.append(ch)
    return "".join(kept) + "}" * depth


def _cite_key(paper: Paper, taken: set[str]) -> str:
    first = paper.authors[0] if paper.authors else ""
    surname = first.split(",")[0] if "," in first else (first.split() or [""])[-1]
    surname = unicodedata.normalize("NFKD", surname).encode("ascii", "ignore").decode()
    words = [w for w in re.findall(r"[A-Za-z]+", paper.title) if len(w) > 3]
    base = (re.sub(r"[^a-z]", "", surname.lower()) or "paper") + paper.published[:4] + (
        words[0].lower() if words else "")
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}{chr(ord('a') + n - 2)}" if n <= 27 else f"{base}{n}"
    taken.add(key)
    return key


def to_bibtex(papers: Sequence[Paper]) -> str:
    """BibTeX `@misc` entries; arXiv papers carry eprint, archivePrefix and primaryClass."""
    import bibtexparser
    from bibtexparser.model import Entry, Field

    library = bibtexparser.Library()
    taken: set[str] = set()
    for p in papers:
        fields = [Field("title", "{" + _bib_text(p.title or p.id) + "}")]
        if p.authors:
            fields.append(Field("author", _bib_text(" and ".join(p.authors))))
        if p.published[:4].isdigit():
            fields.append(Field("year", p.published[:4]))
        if is_arxiv_id(p.id):
            fields += [Field("eprint", p.id), Field("archivePrefix", "arXiv")]
            if p.primary_category:
                fields.append(Field("primaryClass", _bib_text(p.primary_category)))
            fields.append(Field("url", f"https://arxiv.org/abs/{p.id}"))
        elif p.url:
            fields.append(Field("url", _bib_text(p.url)))
        library.add(Entry("misc", _cite_key(p, taken), fields))
    return bibtexparser.write_string(library)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading formula character gets a `'` before it
    (the OWASP rule against CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def to_csv(items: Sequence[ListItem]) -> str:
    """The list as CSV, one row per paper; no cell can start a spreadsheet formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        p = item.paper
        writer.writerow([_csv_cell(str(x)) for x in (
            p.id, p.title, "; ".join(p.authors), p.published, p.primary_category,
            " ".join(p.categories), p.url, item.added)])
    return buffer.getvalue()


def write_export(path: str | Path, text: str) -> None:
    """Write an export to `path` atomically, through a new temp file in the same folder.

    The temp file is created with O_EXCL (never an existing file or a planted symlink),
    fsynced and renamed over the target; on any failure it is removed. A target that exists
    and is not a regular file (a symlink, directory, device, FIFO) is refused, never followed.

    Raises:
        ListError: one line naming the path and the reason.
    """
    path = Path(path)
    try:
        mode, kind = odd_file(path)
    except OSError as e:
        raise ListError(f"{path}: cannot write ({e.strerror})") from None
    if kind:
        raise ListError(f"{path}: is {kind}; give the path of a regular file to write")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ListError(f"{path}: cannot write ({e.strerror or e})") from None


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


# ---------------------------------------------------------------- import


_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arxiv[:\s]\s*)([a-z\-]+(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(v\d+)?",
    re.IGNORECASE)
_ARXIV_DOI = re.compile(r"10\.48550/arxiv\.(.+)$", re.IGNORECASE)


def normalise_title(title: str) -> str:
    """Lower-case letters and digits only: titles compare equal across LaTeX and casing."""
    text = unicodedata.normalize("NFKD", re.sub(r"\\[a-zA-Z]+|[{}$]", "", title))
    return re.sub(r"[^a-z0-9]+", "", text.lower())


@dataclass(frozen=True)
class BibEntry:
    key: str
    title: str
    arxiv_id: str
    doi: str


def read_bibtex(text: str, source: str = "BibTeX") -> tuple[list[BibEntry], int]:
    """The entries of a BibTeX text, and how many blocks could not be parsed."""
    import bibtexparser

    try:
        library = bibtexparser.parse_string(text)
    except Exception as e:  # noqa: BLE001 - the parser's own errors vary by version
        raise ListError(f"{source}: not BibTeX ({e})") from None
    entries = []
    for e in library.entries:
        fields = {k.lower(): str(f.value).strip().strip("{}\"") for k, f in e.fields_dict.items()}
        arxiv = ""
        doi = fields.get("doi", "")
        if m := _ARXIV_DOI.search(doi):
            arxiv = canonical_id(m.group(1))
        eprint = fields.get("eprint", "")
        if not arxiv and eprint and is_arxiv_id(canonical_id(eprint)):
            arxiv = canonical_id(eprint)
        if not arxiv:
            for name in ("url", "journal", "note", "howpublished", "archiveprefix", "eprint"):
                if m := _ARXIV_IN_TEXT.search(fields.get(name, "")):
                    arxiv = canonical_id(m.group(1))
                    break
        entries.append(BibEntry(e.key, fields.get("title", ""), arxiv, doi))
    return entries, len(library.failed_blocks)


def match_entries(entries: Sequence[BibEntry], rows_of_ids, titles: dict[str, int]
                  ) -> tuple[list[int], list[BibEntry]]:
    """Index rows for the entries (by arXiv id, then arXiv DOI, then title) and the misses.

    Args:
        rows_of_ids: maps a list of ids to {id: row} for those in the index.
        titles: normalised title -> row, for the whole index.
    """
    rows, missing = [], []
    for entry in entries:
        candidates = [x for x in (entry.arxiv_id, entry.doi) if x]
        found = rows_of_ids(candidates) if candidates else {}
        row = next((found[c] for c in candidates if c in found), None)
        if row is None and entry.title:
            row = titles.get(normalise_title(entry.title))
        if row is None:
            missing.append(entry)
        elif row not in rows:
            rows.append(row)
    return rows, missing


@dataclass(frozen=True)
class ImportReport:
    name: str
    entries: int
    added: int
    missing: list[BibEntry]
    unparsed: int


def import_bibtex(store: ReadingLists, name: str, text: str, searcher,
                  source: str = "BibTeX") -> ImportReport:
    """Make (or extend) list `name` from a BibTeX text, matching entries to the index."""
    name = check_name(name)
    entries, unparsed = read_bibtex(text, source)
    if not entries:
        raise ListError(f"{source}: no BibTeX entries found ({unparsed} unparsable blocks)")
    titles = {normalise_title(t): row for row, t in searcher.index.papers.titles() if t}
    rows, missing = match_entries(entries, searcher.rows_of, titles)
    papers = searcher.index.papers.papers(rows)
    added = store.add(name, [papers[r] for r in rows])
    return ImportReport(name, len(entries), added, missing, unparsed)
