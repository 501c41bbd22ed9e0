"""Turning untrusted paper text into safe Streamlit markdown.

Titles, abstracts, authors and categories come from outside. Streamlit's markdown would
interpret `*`, `[x](javascript:...)`, `$...$` and `:directives:`, so every ASCII
punctuation character is backslash-escaped (CommonMark treats `\\<punct>` as that literal
character) and links are only ever made to https arxiv.org or doi.org.

Escaping alone does not stop GFM's autolinks: Streamlit's remark-gfm finds `http://`,
`www.` and `name@host.tld` in the parsed text, after escapes are resolved. A word joiner
(U+2060, invisible and never a line break) after `:` in `://`, after `www` and after `@`
breaks those patterns, so a URL or e-mail address in a title stays text.
"""

from __future__ import annotations

import logging
import re
import string
from functools import lru_cache

from indexer.records import Paper, arxiv_abs_url, is_arxiv_id, safe_url

_PUNCT = set(string.punctuation)
_BADGE_TEXT = re.compile(r"^[A-Za-z0-9.\-]{1,40}$")
_MATH_SPAN = re.compile(r"\$([^$]{1,300})\$")
_LATEXISH = re.compile(r"[\\^_{}]")
_SYMBOL = re.compile(r"\{\\([a-zA-Z]+)\}|\\([a-zA-Z]+)(?![a-zA-Z{])")
_TEXT_ESCAPES = re.compile(r"\\([%&_#])")
_WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r":(?=//)|www(?=\.)|@", re.IGNORECASE)
_BIDI = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
logging.getLogger("pylatexenc").setLevel(logging.ERROR)


@lru_cache(maxsize=1)
def _math_converter():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="text")


def _math_to_text(match: re.Match[str]) -> str:
    inner = match.group(1)
    if not _LATEXISH.search(inner) or "%" in inner:
        return match.group(0)  # "costs $5 and $6" is prose, not math
    try:
        text = _math_converter().latex_to_text(inner)
    except Exception:  # noqa: BLE001 - unparseable math is shown as written
        return match.group(0)
    if "%s" in text:  # pylatexenc's placeholder for a macro it could not expand
        return match.group(0)
    return " ".join(text.split()) or match.group(0)


def _symbol_to_text(match: re.Match[str]) -> str:
    name = match.group(1) or match.group(2)
    try:
        text = _math_converter().latex_to_text("\\" + name)
    except Exception:  # noqa: BLE001
        return match.group(0)
    return text if len(text) == 1 and not text.isascii() else match.group(0)


def readable_math(text: str) -> str:
    """Inline LaTeX math as Unicode text: `$\\alpha \\leq \\sqrt{n}$` becomes `α ≤ √(n)`.

    Only `$...$` spans that look like LaTeX are converted; the result is plain text that
    still needs `escape_md`.
    """
    if "$" in text:
        text = _MATH_SPAN.sub(_math_to_text, text.replace("\\$", "\0"))
    if "\\" in text:  # symbols written outside $...$, e.g. "rate {\\eta}"
        text = _SYMBOL.sub(_symbol_to_text, text)
    return _TEXT_ESCAPES.sub(r"\1", text).replace("\0", "$")


def strip_bidi(text: str) -> str:
    """Text without Unicode bidirectional overrides and isolates (U+202A-U+202E,
    U+2066-U+2069), which let a title show "exe.png" for "gnp.exe" or reverse the rest of
    a line; right-to-left scripts need none of them to display."""
    return text.translate(_BIDI)


def escape_md(text: str) -> str:
    """Text that Streamlit markdown shows literally (no links, HTML, math or directives).

    Every ASCII punctuation character is backslash-escaped, and a word joiner goes after
    `://`'s colon, `www` and `@` so that GFM cannot autolink a URL or an e-mail address.
    """
    text = _AUTOLINK.sub(lambda m: m.group(0) + _WORD_JOINER,
                         " ".join(strip_bidi(str(text)).split()))
    return "".join("\\" + ch if ch in _PUNCT else ch for ch in text)


def paper_links(paper: Paper) -> dict[str, str]:
    """Named safe links for a paper: abstract page and, for arXiv papers, the PDF."""
    links = {}
    abs_url = safe_url(paper.url) or arxiv_abs_url(paper.id)
    if abs_url:
        links["arXiv" if "arxiv.org" in abs_url else "link"] = abs_url
    if is_arxiv_id(paper.id):
        links["PDF"] = f"https://arxiv.org/pdf/{paper.id}"
    return links


def link_md(label: str, url: str) -> str:
    """A markdown link with an escaped label, or just the label when the url is unsafe."""
    url = safe_url(url)
    return f"[{escape_md(label)}]({url})" if url else escape_md(label)


def authors_line(authors: tuple[str, ...] | list[str], limit: int = 4) -> str:
    """First few authors, then '+N more' (plain text, not yet escaped)."""
    shown = ", ".join(authors[:limit])
    rest = len(authors) - limit
    return shown + (f" +{rest} more" if rest > 0 else "")


def category_badges(paper: Paper) -> str:
    """Badges: the primary category first in blue, others grey. Odd names are dropped."""
    cats = [paper.primary_category] if paper.primary_category else []
    cats += [c for c in paper.categories if c != paper.primary_category]
    return " ".join(
        f":{'blue' if i == 0 else 'gray'}-badge[{c}]"
        for i, c in enumerate(cats)
        if _BADGE_TEXT.match(c)
    )


def preview(text: str, limit: int = 320) -> str:
    """The first `limit` characters of text, cut at a word boundary."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"
