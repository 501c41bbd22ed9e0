"""Passage windows: overlapping pieces of a paper's text, each embedded on its own.

all-MiniLM-L6-v2 was trained on inputs of 128 tokens; arXiv abstracts run 200-300. A paper
longer than one window gets windows of `WINDOW` tokens every `STRIDE` tokens (the last one
reaching the end); a paper that fits in one window has none (its whole-text vector is its
only window). The dense score of a candidate is then `WHOLE_WEIGHT * whole + (1 -
WHOLE_WEIGHT) * max(whole, best window)` (`combine`): on SciFact test this lifts dense
nDCG@10 from 0.650 to 0.683 and hybrid from 0.734 to 0.744 (docs/benchmarks.md).

Windows are stored in float16 (their scores only re-rank candidates) and read memory-mapped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

WINDOW = 128  # tokens per window, the model's [CLS] and [SEP] included
STRIDE = 96
WHOLE_WEIGHT = 0.3
CHUNK = 4096  # papers tokenised and encoded at a time (bounded memory at 1M papers)


def spans(n_tokens: int, window: int = WINDOW - 2, stride: int = STRIDE) -> list[tuple[int, int]]:
    """[start, end) token spans covering `n_tokens` content tokens; [] when one window holds
    them all. Consecutive spans overlap by `window - stride` tokens."""
    if n_tokens <= window:
        return []
    starts = list(range(0, n_tokens - window + stride, stride))
    return [(s, min(s + window, n_tokens)) for s in starts if s < n_tokens]


def _snap(word_ids: list, start: int, end: int) -> tuple[int, int]:
    """Move a span's edges onto word boundaries (never inside a word split into pieces)."""
    while 0 < start < end and word_ids[start] is not None and word_ids[start] == word_ids[start - 1]:
        start += 1
    while start < end < len(word_ids) and word_ids[end] is not None and word_ids[end] == word_ids[end - 1]:
        end -= 1
    return start, end


def split(tokenizer, texts: Sequence[str], window: int = WINDOW, stride: int = STRIDE
          ) -> tuple[list[str], np.ndarray]:
    """Window texts of every text that needs them, and the index of the text each belongs to
    (ascending). Windows are cut on the model's own tokens, at word boundaries, and taken
    from the original text (a fast tokenizer's offsets) or decoded from the tokens."""
    out: list[str] = []
    owners: list[int] = []
    if not texts:
        return out, np.zeros(0, dtype=np.int64)
    fast = bool(getattr(tokenizer, "is_fast", False))
    options = {"add_special_tokens": False, "truncation": False}
    if fast:
        options.update(return_offsets_mapping=True, return_attention_mask=False,
                       return_token_type_ids=False)
    encoded = tokenizer(list(texts), **options)
    for i, ids in enumerate(encoded["input_ids"]):
        word_ids = encoded.word_ids(i) if fast else None
        for start, end in spans(len(ids), window - 2, stride):
            if fast:
                start, end = _snap(word_ids, start, end)
                offsets = encoded["offset_mapping"][i]
                piece = texts[i][offsets[start][0]:offsets[end - 1][1]]
            else:
                piece = tokenizer.decode(ids[start:end])
            out.append(piece)
            owners.append(i)
    return out, np.asarray(owners, dtype=np.int64)


def pointers(owners: np.ndarray, count: int) -> np.ndarray:
    """CSR pointers: the windows of paper `r` are rows ptr[r]:ptr[r + 1] (owners ascending)."""
    return np.searchsorted(owners, np.arange(count + 1), side="left").astype(np.int64)


def best_window(vectors: np.ndarray, ptr: np.ndarray, rows: np.ndarray, query: np.ndarray
                ) -> np.ndarray:
    """The best window cosine of each row (-inf for a paper without windows)."""
    starts, ends = ptr[rows], ptr[rows + 1]
    lengths = ends - starts
    best = np.full(len(rows), -np.inf, dtype=np.float32)
    has = lengths > 0
    if not has.any():
        return best
    index = np.concatenate([np.arange(s, e) for s, e in zip(starts[has], ends[has], strict=True)])
    scores = np.asarray(vectors[index], dtype=np.float32) @ query
    offsets = np.concatenate([[0], np.cumsum(lengths[has])[:-1]])
    best[has] = np.maximum.reduceat(scores, offsets)
    return best


def combine(whole: np.ndarray, window_best: np.ndarray, whole_weight: float = WHOLE_WEIGHT
            ) -> np.ndarray:
    """Dense score from the whole-text cosine and the best window's."""
    return whole_weight * whole + (1 - whole_weight) * np.maximum(whole, window_best)


def cut(papers, tokenizer) -> Iterator[tuple[list[str], np.ndarray]]:
    """(window texts, owner rows) of the papers, `CHUNK` papers tokenised at a time
    (bounded memory at 1M papers); chunks without a window are left out."""
    for first in range(0, len(papers), CHUNK):
        texts, owned = split(tokenizer, [p.text for p in papers[first:first + CHUNK]])
        if texts:
            yield texts, owned + first


def encode(papers, encoder, on_progress=None) -> tuple[np.ndarray, np.ndarray] | None:
    """(float16 window vectors, owner rows) of the papers' texts, or None when the encoder
    exposes no tokenizer to cut windows with (a fake in tests, vectors imported with
    --vectors). Works through `CHUNK` papers at a time."""
    from indexer.build import encode_papers

    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return None
    parts: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for texts, owned in cut(papers, tokenizer):
        parts.append(encode_papers(_pieces(texts), encoder, on_progress).astype(np.float16))
        owners.append(owned)
    if not parts:
        return np.zeros((0, encoder.dim), dtype=np.float16), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts), np.concatenate(owners)


def encode_with_papers(papers, encoder, with_windows: bool, on_progress=None
                       ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(whole-text vectors, windows as `encode` returns them or None) from one
    `encode_papers` call over the papers and their windows together: an encoder with
    `encode_many` (a Ray cluster, indexer/cluster.py) then starts its workers, one model
    load each, once rather than twice."""
    from indexer.build import encode_papers

    texts: list[str] = []
    owners: list[np.ndarray] = []
    if with_windows:
        for chunk, owned in cut(papers, encoder.tokenizer):
            texts += chunk
            owners.append(owned)
    vectors = encode_papers(list(papers) + _pieces(texts), encoder, on_progress)
    if not with_windows:
        return vectors, None
    return vectors[:len(papers)], (vectors[len(papers):].astype(np.float16),
                                   np.concatenate(owners) if owners else np.zeros(0, np.int64))


def _pieces(texts: Sequence[str]) -> list:
    """Window texts as papers to encode (a paper without a title embeds its abstract)."""
    from indexer.records import Paper

    return [Paper(id=str(i), title="", abstract=t) for i, t in enumerate(texts)]


def merge(old: tuple[np.ndarray, np.ndarray] | None, replaced: np.ndarray,
          fresh: tuple[np.ndarray, np.ndarray], fresh_rows: Sequence[int]
          ) -> tuple[np.ndarray, np.ndarray]:
    """An update's windows: the old ones except those of `replaced` rows, plus `fresh`
    windows (whose owners index `fresh_rows`), ordered by owner row; float16."""
    parts_v, parts_o = [], []
    if old is not None:
        keep = ~np.isin(old[1], replaced)
        parts_v.append(np.asarray(old[0][keep], dtype=np.float16))
        parts_o.append(np.asarray(old[1][keep], dtype=np.int64))
    rows = np.asarray(fresh_rows, dtype=np.int64)
    parts_v.append(np.asarray(fresh[0], dtype=np.float16))
    parts_o.append(rows[fresh[1]] if len(fresh[1]) else np.zeros(0, np.int64))
    vectors, owners = np.concatenate(parts_v), np.concatenate(parts_o)
    order = np.argsort(owners, kind="stable")
    return vectors[order], owners[order]
