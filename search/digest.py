"""Digests: the new papers of a date window that match a saved query or a reading list.

A digest is written as Markdown and as HTML (every paper field escaped; links only to
arXiv or doi.org) and can be sent by SMTP as one message with both parts.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import smtplib
import string
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from indexer.errors import InvalidQuery, PapersiftError
from indexer.files import odd_file
from indexer.records import arxiv_abs_url, control_character, parse_date, safe_url
from search.searcher import Filters, Hit, Searcher

MAX_DIGEST = 50


class DigestError(PapersiftError):
    """A digest that cannot be made or delivered."""


@dataclass(frozen=True)
class Digest:
    title: str
    basis: str  # what the papers were matched against, for the reader
    since: str
    until: str
    hits: list[Hit]

    @property
    def slug(self) -> str:
        return slug(self.title, self.since)


def title_for(query: str = "", list_name: str = "") -> str:
    """The digest's title: it names the query or the reading list."""
    return f"papersift digest: {query or list_name}"


def slug(title: str, since: str) -> str:
    """The digest's file name without suffix: the title's words and the window's start."""
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "digest"
    return f"{words}-{since}"


def paths(out_dir: Path, title: str, since: str) -> tuple[Path, Path]:
    """Where the digest titled `title` for a window starting `since` is written: .md, .html."""
    name = slug(title, since)
    return out_dir / f"{name}.md", out_dir / f"{name}.html"


def check_targets(*targets: Path) -> None:
    """Refuse targets that exist and are not regular files (symbolic links, FIFOs,
    folders, devices): a digest replaces only regular files, and never writes through
    a link.

    Raises:
        DigestError: one line naming the path and what it is.
    """
    for path in targets:
        try:
            _, kind = odd_file(path)
        except OSError as e:
            raise DigestError(f"{path}: cannot write the digest ({e.strerror or e})") from None
        if kind:
            raise DigestError(f"{path}: is {kind}; the digest is written only over a regular "
                              "file (remove it or choose another --out)")


def window(since: str, until: str = "", today: dt.date | None = None) -> tuple[str, str]:
    """The digest's dates [since, until], both YYYY-MM-DD; `until` defaults to today.

    Raises:
        InvalidQuery: a date that is not YYYY-MM-DD (indexer.records.parse_date), or
            `since` after `until`.
    """
    for option, value in (("--since", since), ("--until", until)):
        if value:
            try:
                parse_date(value)
            except ValueError:
                raise InvalidQuery(f"{option} must be a YYYY-MM-DD date, got {value!r}") from None
    if not since:
        raise InvalidQuery("--since is required (YYYY-MM-DD)")
    end = until or (today or dt.date.today()).isoformat()
    if since > end:
        raise InvalidQuery(f"--since {since} is after --until {end}" + ("" if until else " (today)"))
    return since, end


def check_line(option: str, value: str) -> str:
    """`value` on one line, spaces collapsed: a query or list name titles the digest and
    its e-mail's subject.

    Raises:
        InvalidQuery: it holds a control character other than line breaks and tabs.
    """
    value = " ".join(value.split())
    if bad := control_character(value):
        raise InvalidQuery(f"{option} holds the control character U+{ord(bad):04X}: {value[:80]!r}")
    return value


def check_address(option: str, value: str) -> str:
    """An e-mail address for a message header: one line, with an @.

    Raises:
        InvalidQuery: no @, or a control character (CR/LF would forge headers).
    """
    if "@" not in value or control_character(value):
        raise InvalidQuery(f"{option} must be an e-mail address, got {value[:80]!r}")
    return value.strip()


def make_digest(searcher: Searcher, *, since: str, until: str = "", query: str = "",
                list_name: str = "", list_ids: list[str] | None = None, k: int = 20) -> Digest:
    """Papers published in [since, until] matching `query`, or like the list's papers.

    Raises:
        InvalidQuery: both or neither of `query` and `list_name`, a bad date or window.
        DigestError: none of the list's papers is in the index.
    """
    query, list_name = check_line("--query", query), check_line("--list", list_name)
    if bool(query) == bool(list_name):
        raise InvalidQuery("give either a query or a reading list for the digest, not both")
    since, until = window(since, until)
    k = max(1, min(k, MAX_DIGEST))
    filters = Filters(since=since, until=until)
    if query:
        hits = searcher.search(query, k, filters)
        return Digest(title_for(query=query), f'the query "{query}"', since, until, hits)
    known = list(searcher.rows_of(list_ids or []))
    if not known:
        raise DigestError(f"reading list {list_name!r} has no papers in index "
                          f"{searcher.index.root}; add some before asking for a digest")
    hits = searcher.recommend(known, k=k, filters=filters)
    return Digest(title_for(list_name=list_name), f'the reading list "{list_name}" '
                  f"({len(known)} papers)", since, until, hits)


def _safe_link(hit: Hit) -> str:
    return safe_url(hit.paper.url) or arxiv_abs_url(hit.paper.id)


def _meta(p) -> str:
    """Authors (first four), date and primary category, for both renderings."""
    authors = ", ".join(p.authors[:4]) + (" et al." if len(p.authors) > 4 else "")
    return " · ".join(x for x in (authors, p.published, p.primary_category) if x)


def _short(abstract: str, limit: int = 400) -> str:
    return abstract if len(abstract) <= limit else abstract[:limit].rsplit(" ", 1)[0] + " …"


# Where CommonMark and GFM read a character as markup (see `_md_text`).
_ENTITY = re.compile(r"&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};)")
_CLOSING_HASHES = re.compile(r"(?:^|\s)(#+)\s*$")  # would end an ATX heading
_BLOCK_START = re.compile(r"[#>+=`~*_-]|[0-9]{1,9}(?=[.)])")  # heading, quote, list, rule, fence
_PUNCT = frozenset(string.punctuation)


def _inline_markup(ch: str, before: str, after: str) -> bool:
    """Whether `ch` between `before` and `after` ("" at an end of the text, where the
    digest's own markup may follow) could open or close Markdown markup."""
    if ch in "`[]":  # code spans; link and image brackets
        return True
    if ch == "\\":  # escapes the next punctuation (or the link text's closing bracket)
        return after == "" or after in _PUNCT
    if ch in "*~":  # emphasis and strikethrough, unless spaces on both sides
        return not (before.isspace() and after.isspace())
    if ch == "_":  # as `*`, except inside a word (snake_case stays as written)
        return not ((before.isalnum() and after.isalnum())
                    or (before.isspace() and after.isspace()))
    if ch == "<":  # an HTML tag, comment or autolink
        return after != "" and after.isascii() and (after.isalpha() or after in "/!?")
    return False


def _md_text(text: str, line_start: bool = False) -> str:
    """`text` on one line for the Markdown digest, shown literally by any viewer.

    Only what CommonMark or GFM would read as markup at that position gets a backslash:
    brackets and backticks, `*`/`_`/`~` that could open or close emphasis, `<` before a
    tag, `&` of an entity, a closing `#` run, and with `line_start` a block marker at the
    start (`#`, `>`, `-`, `1.` ...). `Min-$k$%`, `snake_case` and `a < b` stay as they
    are; `$` is not Markdown (a math-aware viewer shows the author's LaTeX).
    """
    text = " ".join(str(text).split())
    marked = {m.start() for m in _ENTITY.finditer(text)}
    if m := _CLOSING_HASHES.search(text):
        marked.add(m.start(1))
    if line_start and (m := _BLOCK_START.match(text)):
        marked.add(m.end() if m.group().isdigit() else 0)
    out = []
    for i, ch in enumerate(text):
        before, after = text[i - 1:i], text[i + 1:i + 2]
        if i in marked or _inline_markup(ch, before, after):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def to_markdown(d: Digest) -> str:
    lines = [f"# {_md_text(d.title)}", "",
             f"{len(d.hits)} papers published {d.since} to {d.until}, best match to "
             f"{_md_text(d.basis)} first.", ""]
    if not d.hits:
        lines.append("No new papers in this window.")
    for h in d.hits:
        p = h.paper
        title = _md_text(p.title or p.id)
        link = _safe_link(h)
        lines.append(f"{h.rank}. **[{title}]({link})**" if link else f"{h.rank}. **{title}**")
        lines.append(f"   {_md_text(_meta(p), line_start=True)}")
        if p.abstract:
            lines.append(f"   {_md_text(_short(p.abstract), line_start=True)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_html(d: Digest) -> str:
    e = html.escape
    items = []
    for h in d.hits:
        p = h.paper
        link = _safe_link(h)
        title = e(p.title or p.id)
        head = f'<a href="{e(link, quote=True)}">{title}</a>' if link else title
        items.append(f"<li><p><strong>{head}</strong><br><small>{e(_meta(p))}</small></p>"
                     f"<p>{e(_short(p.abstract))}</p></li>")
    body = "\n".join(items) if items else "<p>No new papers in this window.</p>"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{e(d.title)}</title></head>\n<body style=\"font-family: sans-serif; "
        "max-width: 46em; margin: auto\">\n"
        f"<h1>{e(d.title)}</h1>\n<p>{len(d.hits)} papers published {e(d.since)} to "
        f"{e(d.until)}, best match to {e(d.basis)} first.</p>\n<ol>\n{body}\n</ol>\n"
        "</body></html>\n"
    )


def write(d: Digest, out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/<slug>.md and DIR/<slug>.html; returns both paths.

    Each file is written atomically through a new temp file beside it (O_EXCL, then
    renamed), so a planted symbolic link or FIFO is never written through or waited on.

    Raises:
        DigestError: a target that is not a regular file (checked for both before either
            is written), or a folder or file that cannot be written.
    """
    from search.lists import ListError, write_export

    md, page = paths(out_dir, d.title, d.since)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DigestError(f"{out_dir}: cannot write the digest ({e.strerror or e})") from None
    check_targets(md, page)
    try:
        write_export(md, to_markdown(d))
        write_export(page, to_html(d))
    except ListError as e:
        raise DigestError(str(e)) from None
    return md, page


def parse_smtp(value: str) -> tuple[str, int]:
    """HOST:PORT (port 1-65535) from an --smtp value."""
    host, sep, port = value.rpartition(":")
    good_host = bool(host) and not control_character(host) and not any(c.isspace() for c in host)
    good_port = port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536
    if not (sep and good_host and good_port):
        raise InvalidQuery(f"--smtp must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def send(d: Digest, host: str, port: int, to: str, sender: str = "papersift@localhost",
         timeout: float = 30.0) -> None:
    """Send the digest as one message with a plain-text (Markdown) and an HTML part."""
    to, sender = check_address("--to", to), check_address("--from", sender)
    msg = EmailMessage()
    msg["Subject"] = f"{d.title} ({d.since} to {d.until})"
    msg["From"] = sender
    msg["To"] = to
    msg.set_content(to_markdown(d))
    msg.add_alternative(to_html(d), subtype="html")
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise DigestError(f"cannot send the digest through {host}:{port} ({e})") from None
