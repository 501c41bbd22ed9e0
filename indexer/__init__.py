"""papersift's indexer: turns paper sources into a stored, searchable index."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("papersift")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
