""""Did you mean": correcting query words the index has never seen, from its own vocabulary.

The vocabulary is every word of 3-24 letters in the index's papers (the 300,000 most used),
with its document frequency (`indexer.lexical.surface_words`, stored with the BM25 arrays).
An unknown word of four letters or more is replaced by the vocabulary word closest to it by
optimal-string-alignment distance (edits and adjacent swaps; 1 for words of 4-5 letters, 2
from 6) that keeps its first letter, the most frequent one among equally close words. At
most `MAX_UNKNOWN` words of a query are looked up (a pasted paragraph is not a typo).
Whether the correction is *taken* is the searcher's decision (it must match clearly
better, and never farther in meaning, than what was typed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_WORD = re.compile(r"[A-Za-z]+")
MAX_UNKNOWN = 4


def max_edits(word: str) -> int:
    return 0 if len(word) < 4 else 1 if len(word) <= 5 else 2


class Speller:
    """Closest-word lookup over one vocabulary ({word: document frequency})."""

    def __init__(self, words: Mapping[str, int]) -> None:
        self.words = words
        self._by_length: dict[int, list[str]] = {}
        for w in words:
            self._by_length.setdefault(len(w), []).append(w)
        self._pools: dict[tuple[int, int], list[str]] = {}

    def _pool(self, length: int, limit: int) -> list[str]:
        """Vocabulary words within `limit` letters of `length` (built once per length)."""
        key = (length, limit)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = [w for n in range(length - limit, length + limit + 1)
                                       for w in self._by_length.get(n, ())]
        return pool

    def closest(self, word: str) -> str | None:
        """The best replacement for an unknown lower-case word, or None."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        limit = max_edits(word)
        if limit == 0 or word in self.words:
            return None
        # Optimal string alignment: Damerau-Levenshtein with adjacent transpositions, the
        # typo that plain edit distance counts twice; 3x faster than full Damerau here.
        found = process.extract(word, self._pool(len(word), limit), scorer=OSA.distance,
                                score_cutoff=limit, limit=None)
        # Typos rarely hit the first letter; replacements that change it turn real words
        # the index lacks into unrelated ones ("murder" -> "under", "vaccine" -> "machine").
        found = [m for m in found if m[0][0] == word[0]]
        if not found:
            return None
        best = min(found, key=lambda m: (m[1], -self.words[m[0]], m[0]))
        return best[0]


_SPELLERS: dict[int, Speller] = {}


def speller_for(words: Mapping[str, int]) -> Speller:
    """One Speller per vocabulary object (built on first use, about 50 ms at 80k papers)."""
    key = id(words)
    found = _SPELLERS.get(key)
    if found is None or found.words is not words:
        if len(_SPELLERS) > 8:
            _SPELLERS.clear()
        found = _SPELLERS[key] = Speller(words)
    return found


def correct(text: str, words: Mapping[str, int], known: Callable[[str], bool] | None = None
            ) -> str | None:
    """`text` with each unknown word replaced by its closest vocabulary word, or None when
    nothing was replaced.

    Args:
        known: says whether the index knows a word in another form (a stem match); such
            words are left as typed.
    """
    if not words:
        return None
    speller = speller_for(words)
    changed = False
    looked_up = 0

    def fix(m: re.Match) -> str:
        nonlocal changed, looked_up
        word = m.group(0)
        lower = word.lower()
        if lower in words or max_edits(lower) == 0 or (known is not None and known(lower)):
            return word
        looked_up += 1
        replacement = speller.closest(lower) if looked_up <= MAX_UNKNOWN else None
        if replacement is None:
            return word
        changed = True
        return replacement.capitalize() if word[0].isupper() else replacement

    fixed = _WORD.sub(fix, text)
    return fixed if changed else None
