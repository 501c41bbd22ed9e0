"""Paper records: the `Paper` type, id canonicalisation, text normalisation, validation.

Every input format is turned into plain dicts by `indexer.readers`; `paper_from_dict`
is the single place that decides whether such a dict is a valid paper and how its fields
are cleaned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

# New-style arXiv ids (0704.0001 onwards) and old-style archive/YYMMNNN ids.
_NEW_ID = re.compile(r"^(\d{4}\.\d{4,5})(?:v\d+)?$")
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$")
_ID_PREFIX = re.compile(
    r"^(?:arxiv:|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/)", re.IGNORECASE
)
_VERSION = re.compile(r"v(\d+)$")
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ].*)?$")
_DATE_FIELDS = ("published", "listing_date", "update_date")
SAFE_LINK_HOSTS = ("arxiv.org", "doi.org")  # the only hosts papersift ever links to

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


@lru_cache(maxsize=1)
def _latex_converter():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text()


def _accent_to_unicode(match: re.Match[str]) -> str:
    latex = match.group(0)
    text = _latex_converter().latex_to_text(latex)
    return text if text and "\\" not in text else latex


def clean_text(text: str) -> str:
    """Unwrap hard line breaks, collapse whitespace and turn LaTeX accents into Unicode.

    Math (`$...$`) and every other LaTeX command are left exactly as written.
    """
    text = " ".join(text.split())
    if "\\" not in text:
        return text
    parts = _MATH.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside $...$
        parts[i] = _ACCENT.sub(_accent_to_unicode, parts[i])
    return "".join(parts)


def content_hash(title: str, abstract: str) -> str:
    """Hash of the embedded text, so an unchanged paper is never embedded twice."""
    return hashlib.sha256(embed_text(title, abstract).encode("utf-8")).hexdigest()[:32]


def _string_list(value: Any, field_name: str, split: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = split.split(value)
    elif isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"'{field_name}' must be a list of strings")
        items = list(value)
    else:
        raise ValueError(f"'{field_name}' must be a list or a string, not {type(value).__name__}")
    return tuple(c for c in (clean_text(i) for i in items) if c)


_AUTHOR_SPLIT = re.compile(r"\s*,\s*|\s+and\s+|\s*;\s*")
_SPACE_SPLIT = re.compile(r"[\s,]+")
_LIST_SPLIT = re.compile(r"\s*[,;]\s*")


def _date(record: Mapping[str, Any]) -> str:
    for name in _DATE_FIELDS:
        value = record.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ValueError(f"'{name}' must be a date string, not {type(value).__name__}")
        m = _DATE.match(value.strip())
        try:
            if not m:
                raise ValueError
            return dt.date.fromisoformat(m.group(1)).isoformat()
        except ValueError:
            raise ValueError(f"'{name}' is not a YYYY-MM-DD date: {value!r}") from None
    return ""


def _optional_str(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, not {type(value).__name__}")
    return value.strip()


def _count(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{name}' must be a non-negative integer, not {value!r}")
    return value


def _version(record: Mapping[str, Any], from_id: int | None) -> int | None:
    value = record.get("version")
    if isinstance(value, str) and re.fullmatch(r"v?\d+", value.strip()):
        return int(value.strip().lstrip("v"))
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if value not in (None, ""):
        raise ValueError(f"'version' must be like 3 or 'v3', not {value!r}")
    return from_id


def paper_from_dict(record: Any) -> Paper:
    """Validate and clean one input record.

    Accepts our fields (id, title, abstract, authors, categories, published / listing_date /
    update_date, url, upvotes, primary_category), the Kaggle arXiv snapshot's, and BEIR's
    (`_id`, `title`, `text`).

    Raises:
        ValueError: with a short reason when the record cannot be a paper.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    raw_id = record.get("id", record.get("_id"))
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise ValueError("no id")
    if not isinstance(raw_id, str):
        raise ValueError(f"'id' must be a string, not {type(raw_id).__name__}")
    title = clean_text(_optional_str(record, "title"))
    abstract = clean_text(
        _optional_str(record, "abstract") if "abstract" in record else _optional_str(record, "text")
    )
    if not title and not abstract:
        raise ValueError("neither title nor abstract")
    paper_id, id_version = split_version(raw_id)
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
