"""What an index is, as `papersift info` prints it and the HTTP API's `/v1/info` returns it.

`index_facts` reads an opened generation (manifest, metadata, map) into one JSON-ready
dict; the `*_line` helpers put manifest entries into the words `info` prints.
"""

from __future__ import annotations

from typing import Any


def index_facts(handle, atlas: Any = None) -> dict[str, Any]:
    """The facts of one opened generation (`indexer.store.IndexHandle`).

    Args:
        handle: the opened generation.
        atlas: its map (`indexer.atlas.Atlas`) or None when it has none.

    Returns:
        generation, created, papersift and schema versions, papers, the published date
        range, model, vectors, faiss, lexical, windows, build (manifest entries, None where
        absent), size in bytes and files, categories (name and papers, most common first)
        and map (topics, method, seed; None without a map).
    """
    m = handle.manifest
    lo, hi = handle.papers.date_range()
    return {
        "generation": handle.generation.name,
        "created": m["created"],
        "papersift_version": m["papersift_version"],
        "schema_version": m["schema_version"],
        "papers": int(m["count"]),
        "published": {"first": lo or None, "last": hi or None},
        "model": {"name": m["model"]["name"], "fingerprint": m["model"]["fingerprint"]},
        "vectors": {"dim": int(m["dim"]), "dtype": m.get("vector_dtype", "float32"),
                    "metric": m["metric"], "normalized": bool(m["normalized"])},
        "faiss": dict(m["faiss"]),
        "lexical": m.get("lexical") or None,
        "windows": m.get("windows") or None,
        "build": m.get("build") or None,
        "size_bytes": handle.size_bytes(),
        "files": len(m["files"]),
        "categories": [{"name": c, "papers": n} for c, n in handle.papers.categories()],
        "map": None if atlas is None else {
            "topics": len(atlas.labels), "method": atlas.info.get("method"),
            "seed": atlas.info.get("seed")},
    }


def window_line(manifest: dict) -> str:
    """The passage windows as `info` describes them (a hand-edited entry stays one line)."""
    w = manifest.get("windows")
    if not w:
        return "none (build --windows adds them)"
    try:
        count = int(w["count"])
        return (f"{count:,} passages of {int(w['tokens'])} tokens every {int(w['stride'])} "
                f"({count / max(1, int(manifest['count'])):.2f} per paper)")
    except (KeyError, TypeError, ValueError):
        return f"unreadable manifest entry {str(w)[:80]!r}"


def lexical_line(handle) -> str:
    from indexer.lexical import words

    lex = handle.manifest.get("lexical")
    if not lex:
        return "none (rebuild to enable hybrid search)"
    line = (f"BM25 ({lex.get('method')}, k1 {lex.get('k1')}, b {lex.get('b')}, "
            f"title x{lex.get('title_weight')}, stemmed)")
    if handle.lexical is not None and not words(handle.lexical):
        line += "; no spelling vocabulary (written by an older papersift: update or rebuild)"
    return line


def build_line(m: dict) -> str:
    """The build choices the manifest records, which updates and rebuilds keep."""
    b = m.get("build")
    if not b:
        return "(not recorded: written by an older papersift; the next update records them)"
    parts = [f"index type {b.get('index_type', 'auto')}"]
    if b.get("float16"):
        parts.append("float16")
    parts.append("windows" if b.get("windows") else "no windows")
    if b.get("vectors"):
        parts.append(f"vectors imported from {b['vectors']} (updates need --vectors)")
    if isinstance(r := b.get("ray"), dict):
        parts.append(f"encoded on Ray ({r.get('nodes')} nodes, {r.get('actors')} actors"
                     + (f", {r['gpus']} GPUs)" if r.get("gpus") else ")"))
    if mp := m.get("map"):
        k = mp.get("clusters") or "auto"
        parts.append(f"map: {k} clusters, {mp.get('method', 'auto')} layout, seed {mp.get('seed')}")
    return ", ".join(parts)
