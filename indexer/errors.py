"""Exceptions raised by papersift's library code.

The library raises these; only the edges (the CLI, the app) turn them into one-line
messages and exit codes. Every message names what was wrong and where.
"""


class PapersiftError(Exception):
    """Base class for every error papersift reports to a user."""


class BadRecord(PapersiftError):
    """A paper record that cannot be indexed (raised for `--strict` builds)."""


class IndexNotFound(PapersiftError):
    """No built index at the given location."""


class IndexCorrupt(PapersiftError):
    """An index folder whose files disagree with its manifest."""


class ModelMismatch(PapersiftError):
    """The index was built with another model than the one configured."""


class IndexLocked(PapersiftError):
    """Another process is writing this index."""


class UnknownPaper(PapersiftError):
    """A paper id that is not in the index."""


class ModelUnavailable(PapersiftError):
    """The model itself cannot be loaded (a bad --model folder, a hub name offline)."""


class InvalidQuery(PapersiftError, ValueError):
    """A query or search parameter the user must correct (empty query, k out of range).

    `field` names the parameter at fault where one is ("since", "category", ...), for
    front ends that answer per field (the HTTP API).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
