"""The lexical half of an index: BM25 (bm25s) over title and abstract, stemmed, stopworded.

`store.py` decides where its files go; this module decides how text becomes BM25 terms,
so that documents (at build) and queries (at search) are always tokenised the same way.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Chosen on SciFact train queries (see docs/benchmarks.md): BM25 with the title counted
# twice, Lucene-style scoring.
SETTINGS: dict[str, Any] = {
    "library": "bm25s",
    "method": "lucene",
    "k1": 1.2,
    "b": 0.75,
    "title_weight": 2,
    "stemmer": "english",
    "stopwords": "en",
}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(SETTINGS["stemmer"])


def document_text(title: str, abstract: str, title_weight: int | None = None) -> str:
    weight = SETTINGS["title_weight"] if title_weight is None else title_weight
    return " ".join([title] * weight + [abstract])


def import_bm25s():
    """bm25s, imported without numba and scipy.sparse: bm25s imports both whenever they
    are installed (umap-learn brings them) for backends this index never uses ("numpy" is
    bm25s's default and ours for scoring and for the sparse matrix), and those imports were
    0.7 s of a one-shot `papersift search`."""
    import sys

    if "bm25s" in sys.modules:
        return sys.modules["bm25s"]
    hidden = [m for m in ("numba", "scipy.sparse") if m not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError meanwhile
    try:
        import bm25s
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]  # later imports (umap for `papersift map`) find it
    return bm25s


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    bm25s = import_bm25s()

    return bm25s.tokenize(list(texts), stopwords=SETTINGS["stopwords"], stemmer=_stemmer(),
                          return_ids=False, show_progress=False)


def has_words(texts: Sequence[str], chunk: int = 64) -> bool:
    """Whether any text has a word BM25 indexes (not only stopwords, punctuation); stops
    at the first chunk that has one, so a real corpus costs one small tokenisation."""
    chunks = (texts[start:start + chunk] for start in range(0, len(texts), chunk))
    return any(any(tokenize(part)) for part in chunks)


# The spelling vocabulary: surface words (lower case, letters only) with their document
# frequency, stored beside the BM25 arrays; "did you mean" looks words up in it.
WORDS_FILE = "words.json"
_WORD = re.compile(r"[a-z]{3,24}")


MAX_WORDS = 300_000


def surface_words(texts: Sequence[str], min_df: int = 1, limit: int = MAX_WORDS) -> dict[str, int]:
    """Lower-case words of 3-24 letters and how many texts use each (at least `min_df`),
    the `limit` most used. Words of one paper stay: a coined method name is what a
    known-item search types (and mistypes)."""
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(_WORD.findall(text.lower())))
    return {w: n for w, n in df.most_common(limit) if n >= min_df}


def build(titles: Sequence[str], abstracts: Sequence[str], settings: dict | None = None):
    """A BM25 retriever over the documents, row-aligned with the vectors, carrying the
    spelling vocabulary of the same texts (`retriever.words`)."""
    bm25s = import_bm25s()
    s = {**SETTINGS, **(settings or {})}
    texts = [document_text(t, a, 1) for t, a in zip(titles, abstracts, strict=True)]
    retriever = bm25s.BM25(k1=s["k1"], b=s["b"], method=s["method"])
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    weight = s["title_weight"]
    weighted = texts if weight == 1 else [
        document_text(t, a, weight) for t, a in zip(titles, abstracts, strict=True)]
    retriever.index(tokenize(weighted), show_progress=False)
    retriever.words = surface_words(texts)
    return retriever


# A shard of a larger index (indexer/shard.py) scores with the whole corpus's statistics:
# its postings are the whole index's, cut to its rows, so a paper's BM25 score is the same
# in the shard as in the whole index; what the shard's own postings cannot tell (how many
# papers there are in all, each term's document frequency and best score over all papers)
# is stored beside them and read by `ceiling`, `idf` and `seed_terms`.
CORPUS_FILE = "corpus.stats.json"
CORPUS_DF = "corpus.df.npy"
CORPUS_MAX = "corpus.max.npy"


@dataclass(frozen=True)
class CorpusStats:
    """Whole-corpus statistics of a shard's BM25 index (see `cut`)."""

    num_docs: int
    df: np.ndarray  # documents using each vocabulary term
    term_max: np.ndarray  # each term's best score over all documents


def _corpus(retriever) -> CorpusStats | None:
    return getattr(retriever, "corpus_stats", None)


def num_docs(retriever) -> int:
    """Papers in the whole corpus (a shard's own count is `scores["num_docs"]`)."""
    stats = _corpus(retriever)
    return stats.num_docs if stats is not None else int(retriever.scores["num_docs"])


def cut(retriever, first: int, end: int):
    """The BM25 index of rows [first, end) as a shard: the same per-document scores (so
    BM25 sums match the whole index bit for bit), documents renumbered from 0, and the
    whole corpus's statistics attached for ceilings and IDF."""
    bm25s = import_bm25s()
    s = retriever.scores
    data, indices, indptr = np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])
    keep = (indices >= first) & (indices < end)
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    part = bm25s.BM25(k1=retriever.k1, b=retriever.b, method=retriever.method)
    part.scores = {"data": data[keep], "indices": (indices[keep] - first).astype(indices.dtype),
                   "indptr": kept[indptr].astype(indptr.dtype), "num_docs": int(end - first)}
    part.vocab_dict = dict(retriever.vocab_dict)
    part.unique_token_ids_set = set(part.vocab_dict.values())
    part.nonoccurrence_array = None  # lucene scoring has none
    part.words = words(retriever)
    whole = _corpus(retriever)
    if whole is None:
        terms = len(indptr) - 1
        df = np.diff(indptr).astype(np.int64)
        term_max = np.zeros(terms, dtype=np.float32)
        has = df > 0
        if has.any():
            term_max[has] = np.maximum.reduceat(data, indptr[:-1][has])
        whole = CorpusStats(int(s["num_docs"]), df, term_max)
    part.corpus_stats = whole
    return part


def save(retriever, folder: Path) -> None:
    retriever.save(folder, allow_pickle=False, show_progress=False)
    words = getattr(retriever, "words", None)
    if words is not None:
        (folder / WORDS_FILE).write_text(json.dumps(words, ensure_ascii=True, separators=(",", ":")))
    if (stats := _corpus(retriever)) is not None:
        np.save(folder / CORPUS_DF, stats.df, allow_pickle=False)
        np.save(folder / CORPUS_MAX, stats.term_max, allow_pickle=False)
        (folder / CORPUS_FILE).write_text(json.dumps({"num_docs": stats.num_docs}))


def _load_corpus(folder: Path, terms: int) -> CorpusStats | None:
    """A shard's whole-corpus statistics (None for a whole index). ValueError when damaged."""
    try:
        found = json.loads((folder / CORPUS_FILE).read_text())
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise ValueError(f"{folder / CORPUS_FILE}: {e}") from None
    n = found.get("num_docs") if isinstance(found, dict) else None
    df = np.load(folder / CORPUS_DF, allow_pickle=False)
    term_max = np.load(folder / CORPUS_MAX, allow_pickle=False)
    if (type(n) is not int or n < 1 or df.shape != (terms,) or term_max.shape != (terms,)
            or not np.issubdtype(df.dtype, np.integer) or df.min(initial=0) < 0
            or df.max(initial=0) > n or not np.isfinite(term_max).all()):
        raise ValueError(f"{folder}: corpus statistics do not fit its {terms:,}-term vocabulary")
    return CorpusStats(n, df, term_max)


def load(folder: Path):
    """The retriever, memory-mapped, with its spelling vocabulary read now (a running app
    must not depend on the generation's folder outliving the next update).

    Raises ValueError for an unreadable vocabulary file."""
    bm25s = import_bm25s()
    retriever = bm25s.BM25.load(folder, mmap=True, allow_pickle=False, show_progress=False)
    try:
        found = json.loads((folder / WORDS_FILE).read_text())
    except FileNotFoundError:
        found = {}  # written before the vocabulary existed: no spelling suggestions
    except UnicodeDecodeError as e:
        raise ValueError(f"{folder / WORDS_FILE}: {e}") from None
    if not isinstance(found, dict) or not all(
            isinstance(w, str) and type(n) is int for w, n in found.items()):
        raise ValueError(f"{folder / WORDS_FILE}: not a word -> document frequency object")
    retriever.words = found
    retriever.corpus_stats = _load_corpus(folder, len(retriever.scores["indptr"]) - 1)
    return retriever


def check(retriever, count: int, folder: Path) -> None:
    """Cheap structural checks of a loaded BM25 index (no pass over its postings): a
    damaged file is refused here rather than failing inside a search."""
    from indexer.errors import IndexCorrupt

    s = retriever.scores
    data, indices, indptr = s.get("data"), s.get("indices"), s.get("indptr")
    vocabulary = len(getattr(retriever, "vocab_dict", None) or {})
    if s.get("num_docs") != count:
        raise IndexCorrupt(f"{folder}: {s.get('num_docs')} documents but the manifest says {count}")
    if (data is None or indices is None or indptr is None or data.shape != indices.shape
            or indptr.ndim != 1 or len(indptr) not in (vocabulary, vocabulary + 1)
            or (len(indptr) and (int(indptr[0]) != 0 or int(indptr[-1]) != len(indices)))):
        raise IndexCorrupt(f"{folder}: postings arrays do not agree with each other or with "
                           f"the {vocabulary:,}-word vocabulary; build the index again")


def words(retriever) -> dict[str, int]:
    """The spelling vocabulary ({} for an index written before it existed)."""
    return getattr(retriever, "words", None) or {}


@dataclass(frozen=True)
class QueryTerms:
    """A query as BM25 sees it.

    tokens: every stemmed, stopworded token (repeats kept).
    ids: vocabulary ids of the tokens the index knows (repeats kept, as BM25 scores them).
    unknown: the tokens the index has never seen.
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    unknown: tuple[str, ...]


def query_terms(retriever, query: str) -> QueryTerms:
    tokens = tuple(tokenize([query])[0]) if query.strip() else ()
    vocab = retriever.vocab_dict
    return QueryTerms(tokens, tuple(vocab[t] for t in tokens if t in vocab),
                      tuple(t for t in tokens if t not in vocab))


def scores(retriever, query: str | QueryTerms) -> np.ndarray:
    """BM25 score of every document for one query (zeros where no term matches)."""
    terms = query_terms(retriever, query) if isinstance(query, str) else query
    if not terms.ids:
        return np.zeros(retriever.scores["num_docs"], dtype=np.float32)
    return np.asarray(retriever.get_scores(list(terms.ids)), dtype=np.float32)


def _term_max(retriever, token_id: int) -> float:
    if (stats := _corpus(retriever)) is not None:
        return float(stats.term_max[token_id])
    cache = retriever.__dict__.setdefault("_papersift_term_max", {})
    found = cache.get(token_id)
    if found is None:
        indptr = retriever.scores["indptr"]
        posting = retriever.scores["data"][int(indptr[token_id]):int(indptr[token_id + 1])]
        found = float(posting.max()) if len(posting) else 0.0
        if len(cache) > 50_000:
            cache.clear()
        cache[token_id] = found
    return found


def ceiling(retriever, terms: QueryTerms) -> float:
    """The highest BM25 score any document could reach for these terms: the sum of each
    term's best score in the index, plus, for each word the index has never seen, the
    score of a word found in one document only (the most any word can add). Dividing by
    it puts BM25 on a fixed 0-1 scale (the share of the query's best possible match), so a
    weak match stays weak, and matching one known word of four is not a full match."""
    known = sum(_term_max(retriever, t) for t in terms.ids)
    if not terms.unknown:
        return known
    n = num_docs(retriever)
    return known + len(terms.unknown) * math.log(1 + (n - 1 + 0.5) / 1.5)


def idf(retriever, terms: QueryTerms) -> np.ndarray:
    """Inverse document frequency (Lucene's) of each known term, divided by the largest
    possible value (a term in one document), so 1.0 = rarest."""
    n = num_docs(retriever)
    if (stats := _corpus(retriever)) is not None:
        df = stats.df[list(terms.ids)].astype(np.float64)
    else:
        indptr = retriever.scores["indptr"]
        df = np.array([int(indptr[t + 1]) - int(indptr[t]) for t in terms.ids], dtype=np.float64)
    top = math.log(1 + (n - 1 + 0.5) / 1.5)
    return np.log(1 + (n - df + 0.5) / (df + 0.5)) / top if len(df) else np.zeros(0)


def seed_terms(retriever, papers, n: int) -> QueryTerms:
    """The `n` most distinctive known terms of some papers' titles and abstracts (term
    frequency times IDF, title counted as at build): the BM25 side of related work."""
    counts: Counter[str] = Counter()
    for p in papers:
        counts.update(tokenize([document_text(p.title, p.abstract)])[0])
    vocab = retriever.vocab_dict
    known = [(t, c) for t, c in counts.items() if t in vocab]
    if not known:
        return QueryTerms((), (), ())
    weights = idf(retriever, QueryTerms((), tuple(vocab[t] for t, _ in known), ()))
    ranked = sorted(zip(known, weights, strict=True), key=lambda x: (-x[0][1] * x[1], x[0][0]))
    chosen = tuple(t for (t, _), _ in ranked[:n])
    return QueryTerms(chosen, tuple(vocab[t] for t in chosen), ())


def is_known(retriever, word: str) -> bool:
    """Whether BM25 knows a word (after stemming); stopwords count as known."""
    tokens = tokenize([word])[0]
    return all(t in retriever.vocab_dict for t in tokens)
