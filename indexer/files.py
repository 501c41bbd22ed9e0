"""What kind of file a path names, for writers that replace only regular files."""

from __future__ import annotations

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
