"""What a typed query is: a question, an arXiv id or URL, or a pasted abstract."""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexer.records import canonical_id, is_arxiv_id

_ARXIV_IN_TEXT = re.compile(
    r"^\s*(?:arxiv:\s*|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/)?"
    r"(\d{4}\.\d{4,5}(?:v\d+)?|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)(?:\.pdf)?/?\s*$",
    re.IGNORECASE,
)
ABSTRACT_CHARS = 400


@dataclass(frozen=True)
class QueryKind:
    """`kind` is "paper" (value: canonical arXiv id), "abstract" or "text"."""

    kind: str
    value: str


def classify(query: str) -> QueryKind:
    """Recognise a pasted arXiv id or URL, or a whole abstract, in a query string."""
    text = " ".join(query.split())
    m = _ARXIV_IN_TEXT.match(text)
    if m:
        paper_id = canonical_id(m.group(1))
        if is_arxiv_id(paper_id):
            return QueryKind("paper", paper_id)
    if len(text) >= ABSTRACT_CHARS:
        return QueryKind("abstract", text)
    return QueryKind("text", text)
