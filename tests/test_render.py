import re

import pytest

from indexer.records import Paper
from ui import render

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "costs $5 and $6",
    "**bold** _it_ `code` # heading :red[x] :material/home:",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_md_escapes_every_markdown_character(text):
    escaped = render.escape_md(text)
    for i, ch in enumerate(escaped):
        if ch in "<>[]()$*_`#:":
            assert escaped[i - 1] == "\\", (text, escaped)
    assert escaped.replace("\\", "").replace("\u2060", "") == text


# What Streamlit's remark-gfm autolinks, as its JavaScript regexes have it (\w is ASCII there).
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
LINKISH = [
    "see http://evil.example/x?a=1 and HTTPS://EVIL.EXAMPLE",
    "www.evil.example and WWW.Evil.Example/path",
    "write to someone@evil.example or mailto:a.b+c@mail.evil.example",
    "xmpp:bot@evil.example/res",
    "code at https://github.com/x/y (MIT)",
]


@pytest.mark.parametrize("text", LINKISH)
def test_urls_and_addresses_cannot_be_autolinked(text):
    assert GFM_URL.search(text) or GFM_EMAIL.search(text)  # the case is a real autolink
    escaped = render.escape_md(text)
    parsed = re.sub(r"\\(.)", r"\1", escaped)  # what markdown leaves once escapes are read
    assert not GFM_URL.search(parsed) and not GFM_EMAIL.search(parsed), parsed
    assert parsed.replace("\u2060", "") == text  # shown (and copied) as written


def test_ordinary_text_gets_no_word_joiners():
    text = "Attention: a study of 3.5 models at scale // notes, costs $5 (www, ftp:)"
    assert "\u2060" not in render.escape_md(text)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://arxiv.org/abs/2401.00001", "https://arxiv.org/abs/2401.00001"),
        ("https://export.arxiv.org/abs/2401.00001", "https://export.arxiv.org/abs/2401.00001"),
        ("https://doi.org/10.1000/x(1)", "https://doi.org/10.1000/x%281%29"),
        ("http://arxiv.org/abs/1", ""),
        ("javascript:alert(1)", ""),
        ("https://arxiv.org.evil.com/abs/1", ""),
        ("https://evil.com/?arxiv.org", ""),
        ("data:text/html,<script>", ""),
        ("", ""),
    ],
)
def test_safe_url(url, safe):
    assert render.safe_url(url) == safe


def test_links_for_arxiv_and_other_papers():
    p = Paper(id="2401.00001", title="t", abstract="a", url="javascript:alert(1)")
    assert render.paper_links(p) == {
        "arXiv": "https://arxiv.org/abs/2401.00001", "PDF": "https://arxiv.org/pdf/2401.00001"
    }
    assert render.paper_links(Paper(id="4983", title="t", abstract="a")) == {}
    assert render.link_md("[t](x)", "javascript:x") == r"\[t\]\(x\)"


def test_authors_line_and_badges():
    assert render.authors_line(("A", "B", "C", "D", "E", "F"), limit=3) == "A, B, C +3 more"
    assert render.authors_line(("A",)) == "A"
    p = Paper(id="1", title="t", abstract="", categories=("cs.LG", "cs.CL", "x]y"),
              primary_category="cs.CL")
    assert render.category_badges(p) == ":blue-badge[cs.CL] :gray-badge[cs.LG]"


def test_preview_cuts_at_a_word():
    assert render.preview("short") == "short"
    assert render.preview("one two three four", limit=9) == "one two …"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (r"bound $O(\sqrt{n})$ with $\alpha \leq 3$", "bound O(√(n)) with α≤3"),
        ("costs $5 and $6", "costs $5 and $6"),
        (r"rate {\eta} and decay \lambda, \textbf{x}", r"rate η and decay λ, \textbf{x}"),
        (r"about 10\% of R\&D", "about 10% of R&D"),
        (r"broken $\frac{1$ math", r"broken $\frac{1$ math"),
        (r"a \$5 fee and $x^2$", "a $5 fee and x^2"),
    ],
)
def test_readable_math(raw, shown):
    assert render.readable_math(raw) == shown
