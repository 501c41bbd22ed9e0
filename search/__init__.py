"""papersift's search: answers questions and finds similar papers from a stored index."""

from search.searcher import Filters, Hit, Searcher

__all__ = ["Filters", "Hit", "Searcher"]
