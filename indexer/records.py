"""Paper records: the `Paper` type, id canonicalisation, text normalisation, validation.

Every input format is turned into plain dicts by `indexer.readers`; `paper_from_dict`
is the single place that decides whether such a dict is a valid paper and how its fields
are cleaned.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
import reprlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

# New-style arXiv ids (0704.0001 onwards) and old-style archive/YYMMNNN ids.
_NEW_ID = re.compile(r"^(\d{4}\.\d{4,5})(?:v\d+)?$", re.ASCII)
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.ASCII)
_ID_PREFIX = re.compile(
    r"^(?:arxiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/)", re.IGNORECASE
)
_VERSION = re.compile(r"v(\d{1,9})$", re.ASCII)  # longer: no version, never an overflow
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ].*)?", re.DOTALL)
_DATE_FIELDS = ("published", "listing_date", "update_date")
SAFE_LINK_HOSTS = ("arxiv.org", "doi.org")  # the only hosts papersift ever links to
MAX_INT = 2**63 - 1  # SQLite's INTEGER: counts and versions above it cannot be stored
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone JSON "\ud800" escape: not UTF-8
# Characters no id may hold: controls, format characters (zero-width, bidi), line breaks.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_REPR = reprlib.Repr()  # short reprs of bad values: bounded length and nesting depth
_REPR.maxstring = _REPR.maxother = 60

# A LaTeX text accent or special letter: \'e, \'{e}, {\"o}, \c{c}, \v s, \ss, \o ...
_ACC = (
    r"\\(?:['\"`^~=.](?:\{\\?[a-zA-Z]\}|\\?[a-zA-Z])"
    r"|[uvHcdbkr](?:\{\\?[a-zA-Z]\}|\s+[a-zA-Z](?![a-zA-Z]))"
    r"|(?:ss|ae|AE|oe|OE|aa|AA|o|O|l|L)(?![a-zA-Z]))"
)
_ACCENT = re.compile(r"\{" + _ACC + r"\}|" + _ACC)
_MATH = re.compile(r"(\$[^$]*\$)")


@dataclass(frozen=True)
class Paper:
    """One paper as stored in an index. `published` is YYYY-MM-DD or ''."""

    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    primary_category: str = ""
    published: str = ""
    url: str = ""
    upvotes: int | None = None
    num_comments: int | None = None
    keywords: tuple[str, ...] = ()
    version: int | None = None
    content_hash: str = field(default="", compare=False)

    @property
    def text(self) -> str:
        """The text that is embedded: title + ". " + abstract."""
        return embed_text(self.title, self.abstract)


def embed_text(title: str, abstract: str) -> str:
    if title and abstract:
        return f"{title.rstrip('.')}. {abstract}"
    return title or abstract


def split_version(raw: str) -> tuple[str, int | None]:
    """Canonical paper id and arXiv version: `arXiv:2401.00001v2` -> ('2401.00001', 2).

    arXiv ids lose prefixes, URLs and versions; other ids are only stripped.
    """
    s = raw.strip()
    s = _ID_PREFIX.sub("", s)
    if s.lower().endswith(".pdf"):
        s = s[:-4]
    s = s.rstrip("/")
    for pattern in (_NEW_ID, _OLD_ID):
        m = pattern.match(s)
        if m:
            v = _VERSION.search(s)
            return m.group(1), int(v.group(1)) if v else None
    return raw.strip(), None


def canonical_id(raw: str) -> str:
    """Canonical paper id.

    >>> canonical_id("https://arxiv.org/abs/2401.00001v2")
    '2401.00001'
    """
    return split_version(raw)[0]


def safe_url(url: str) -> str:
    """`url` when it is https on arxiv.org or doi.org (or a subdomain), else ''."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not any(
        host == h or host.endswith("." + h) for h in SAFE_LINK_HOSTS
    ):
        return ""
    # Re-quote so that parentheses, spaces and brackets cannot end the markdown link.
    path = quote(parts.path, safe="/:.-_~%")
    return f"https://{host}{path}" + (f"?{quote(parts.query, safe='=&')}" if parts.query else "")


def is_arxiv_id(paper_id: str) -> bool:
    return bool(_NEW_ID.match(paper_id) or _OLD_ID.match(paper_id))


def arxiv_abs_url(paper_id: str) -> str:
    return f"https://arxiv.org/abs/{paper_id}" if is_arxiv_id(paper_id) else ""


# ---------------------------------------------------------------- what people type


def parse_date(text: str) -> dt.date:
    """A calendar day written exactly YYYY-MM-DD.

    The one date parser for dates people give papersift (command-line options, the app's
    URL, digest windows) and for records' dates, so that no two of them disagree. The
    other forms `date.fromisoformat` takes (2025-W01-1, 20250101) are refused.

    Raises:
        ValueError: `text` is not such a date, or not a real day (2024-02-30).
    """
    if isinstance(text, str) and _ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"not a YYYY-MM-DD date: {_REPR.repr(text)}")


def control_character(text: str) -> str | None:
    """The first control, format (zero-width, bidi) or line-break character in `text`."""
    return next((ch for ch in text if unicodedata.category(ch) in _CONTROL_CATEGORIES), None)


def match_categories(asked: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """The asked categories as the index spells them; case does not matter (`cs.cl`).

    Args:
        asked: categories as a person typed them.
        known: every category of the index, the most common first.

    Raises:
        ValueError: a category no paper has, naming the closest ones the index has.
    """
    known = list(known)
    exact = set(known)
    folded: dict[str, str] = {}
    for name in known:
        folded.setdefault(name.casefold(), name)  # the most common spelling wins
    found = []
    for category in asked:
        match = category if category in exact else folded.get(category.casefold())
        if match is None:
            close = difflib.get_close_matches(category.casefold(), list(folded), n=3, cutoff=0.5)
            hint = (f"closest: {', '.join(folded[c] for c in close)}" if close
                    else f"the index has {', '.join(known[:5])}{', ...' if len(known) > 5 else ''}"
                    if known else "the index has no categories")
            raise ValueError(f"no paper has category {_REPR.repr(category)} ({hint})")
        found.append(match)
    return tuple(dict.fromkeys(found))


@lru_cache(maxsize=1)
def _latex_converter():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text()


def _accent_to_unicode(match: re.Match[str]) -> str:
    latex = match.group(0)
    text = _latex_converter().latex_to_text(latex)
    return text if text and "\\" not in text else latex


_C0_C1 = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without C0/C1 control characters (terminal escapes), for printing text that
    an older index may still hold; new records lose them in `clean_text`."""
    return _C0_C1.sub(" ", text)


def clean_text(text: str) -> str:
    """Unwrap hard line breaks, collapse whitespace and turn LaTeX accents into Unicode.

    Math (`$...$`) and every other LaTeX command are left exactly as written.
    """
    text = " ".join(_C0_C1.sub(" ", text).split())  # no terminal escapes, no NULs
    if "\\" not in text:
        return text
    parts = _MATH.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside $...$
        parts[i] = _ACCENT.sub(_accent_to_unicode, parts[i])
    return "".join(parts)


def content_hash(title: str, abstract: str) -> str:
    """Hash of the embedded text, so an unchanged paper is never embedded twice."""
    return hashlib.sha256(embed_text(title, abstract).encode("utf-8")).hexdigest()[:32]


def _text(value: str, name: str) -> str:
    """`value`, refused when UTF-8 cannot store it (SQLite and BM25 see every field)."""
    if m := _SURROGATE.search(value):
        raise ValueError(f"'{name}' holds an unpaired surrogate \\u{ord(m.group()):04x} (a broken "
                         "JSON \\u escape), which is not text")
    return value


def _string_list(value: Any, field_name: str, split: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = split.split(_text(value, field_name))
    elif isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"'{field_name}' must be a list of strings")
        items = [_text(v, field_name) for v in value]
    else:
        raise ValueError(f"'{field_name}' must be a list or a string, not {type(value).__name__}")
    return tuple(c for c in (clean_text(i) for i in items) if c)


_AUTHOR_SPLIT = re.compile(r"\s*,\s*|\s+and\s+|\s*;\s*")
_SPACE_SPLIT = re.compile(r"[\s,]+")
_LIST_SPLIT = re.compile(r"\s*[,;]\s*")
_DIGITS = re.compile(r"[0-9]+")


def _date(record: Mapping[str, Any]) -> str:
    for name in _DATE_FIELDS:
        value = record.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ValueError(f"'{name}' must be a date string, not {type(value).__name__}")
        m = _DATE.fullmatch(value.strip())  # a timestamp keeps its day
        try:
            return parse_date(m.group(1) if m else value).isoformat()
        except ValueError:
            raise ValueError(f"'{name}' is not a YYYY-MM-DD date: {_REPR.repr(value)}") from None
    return ""


def _optional_str(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, not {type(value).__name__}")
    return _text(value, name).strip()


def _count(value: Any, name: str, low: int = 0) -> int | None:
    """An integer field from `low` to MAX_INT (digits in a string too, as CSV cells are)."""
    if value in (None, ""):
        return None
    number = value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        number = int(digits) if len(digits) <= 19 else MAX_INT + 1  # int() refuses 4,300+
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= MAX_INT:
        raise ValueError(f"'{name}' must be a non-negative integer below 2^63, not "
                         f"{_REPR.repr(value)}")
    return number


def _version(record: Mapping[str, Any], from_id: int | None) -> int | None:
    value = record.get("version")
    if value in (None, ""):
        return from_id
    number = value.strip().removeprefix("v") if isinstance(value, str) else value
    try:
        if (version := _count(number, "version", low=1)) is not None:
            return version
    except ValueError:
        pass
    raise ValueError(f"'version' must be like 3 or 'v3' (below 2^63), not {_REPR.repr(value)}")


def _paper_id(record: Mapping[str, Any]) -> tuple[str, int | None]:
    """The canonical id and the version it names; refused when it could not be stored or
    shown safely (no text, a lone surrogate, a control or zero-width character)."""
    raw_id = record.get("id", record.get("_id"))
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise ValueError("no id")
    if not isinstance(raw_id, str):
        raise ValueError(f"'id' must be a string, not {type(raw_id).__name__}")
    paper_id, version = split_version(_text(raw_id, "id"))
    if bad := control_character(paper_id):
        raise ValueError(f"'id' holds the control character U+{ord(bad):04X}: "
                         f"{_REPR.repr(paper_id)}")
    return paper_id, version


def paper_from_dict(record: Any) -> Paper:
    """Validate and clean one input record.

    Accepts our fields (id, title, abstract, authors, categories, published / listing_date /
    update_date, url, upvotes, primary_category), the Kaggle arXiv snapshot's, and BEIR's
    (`_id`, `title`, `text`). Everything SQLite and BM25 will see is checked here, before
    any encoding: text that UTF-8 can store, integers that fit in 64 bits, ids without
    control characters.

    Raises:
        ValueError: with a short reason when the record cannot be a paper.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    paper_id, id_version = _paper_id(record)
    title = clean_text(_optional_str(record, "title"))
    abstract = clean_text(
        _optional_str(record, "abstract") if "abstract" in record else _optional_str(record, "text")
    )
    if not title and not abstract:
        raise ValueError("neither title nor abstract")
    keywords_field = "keywords" if "keywords" in record else "ai_keywords"
    categories = _string_list(record.get("categories"), "categories", _SPACE_SPLIT)
    primary = _optional_str(record, "primary_category") or (categories[0] if categories else "")
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=_string_list(record.get("authors"), "authors", _AUTHOR_SPLIT),
        categories=categories,
        primary_category=primary,
        published=_date(record),
        url=_optional_str(record, "url") or arxiv_abs_url(paper_id),
        upvotes=_count(record.get("upvotes"), "upvotes"),
        num_comments=_count(record.get("num_comments", record.get("numComments")), "num_comments"),
        keywords=_string_list(record.get(keywords_field), keywords_field, _LIST_SPLIT),
        version=_version(record, id_version),
        content_hash=content_hash(title, abstract),
    )
