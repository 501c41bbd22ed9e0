"""Small file helpers shared by the index, the caches and the writers: what kind of file a
path names (writers replace only regular files) and a file's sha256."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def odd_file(path: str | Path) -> tuple[int | None, str | None]:
    """(mode, what is wrong): mode None when nothing is there; what is wrong is None for a
    regular file, else "a symbolic link", "a directory" or "not a regular file". The path
    is never followed. Raises OSError when it cannot be looked at."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None, None
    if stat.S_ISREG(mode):
        return mode, None
    return mode, ("a symbolic link" if stat.S_ISLNK(mode) else "a directory"
                  if stat.S_ISDIR(mode) else "not a regular file")


def sha256_of(path: str | Path) -> str:
    """The file's sha256, read in 4 MiB pieces (hashlib releases the GIL while it hashes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
