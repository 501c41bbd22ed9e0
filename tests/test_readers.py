import csv
import gzip
import json

import pytest

from indexer.errors import PapersiftError
from indexer.readers import Problem, read_papers
from indexer.records import Paper
from tests.conftest import TOY, write_jsonl


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Paper)], [i for i in items if isinstance(i, Problem)]


def test_jsonl(toy_file):
    papers, problems = split(read_papers(toy_file))
    assert [p.id for p in papers] == [r["id"] for r in TOY]
    assert problems == []


def test_jsonl_gz(tmp_path):
    path = tmp_path / "toy.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in TOY))
    papers, problems = split(read_papers(path))
    assert len(papers) == len(TOY) and not problems


def test_csv_and_csv_gz(tmp_path):
    fields = ["id", "title", "abstract", "authors", "categories", "published", "upvotes"]
    for name, opener in (("p.csv", open), ("p.csv.gz", gzip.open)):
        path = tmp_path / name
        with opener(path, "wt", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerow({"id": "2401.00009v2", "title": "CSV paper", "abstract": "Has, commas\nand lines",
                        "authors": "A. B, C. D", "categories": "cs.IR cs.CL",
                        "published": "2024-06-01", "upvotes": "4"})
            w.writerow({"id": "", "title": "no id", "abstract": "x"})
        papers, problems = split(read_papers(path))
        assert papers[0].id == "2401.00009"
        assert papers[0].abstract == "Has, commas and lines"
        assert papers[0].authors == ("A. B", "C. D")
        assert papers[0].upvotes == 4
        assert [str(p) for p in problems] == [f"{path}:4: no id"]  # record 1 spans lines 2-3


def test_beir_corpus(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": "31715818", "title": "", "text": "Alterations of the architecture", "metadata": {}},
        {"_id": "42", "title": "Only a title", "text": ""},
    ])
    papers, _ = split(read_papers(path))
    assert [(p.id, p.title) for p in papers] == [("31715818", ""), ("42", "Only a title")]


def test_bad_lines_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"id": "1", "title": "good"}\n'
        b"{not json\n"
        b"\n"
        b'{"title": "no id"}\n'
        b'{"id": "2"}\n'
        b'{"id": "3", "title": "t", "categories": 5}\n'
        b'{"id": "4", "title": "caf\xe9"}\n'
        b"[1, 2]\n"
    )
    papers, problems = split(read_papers(path))
    assert [p.id for p in papers] == ["1"]
    got = [(p.line, p.reason.split(" (")[0]) for p in problems]
    assert got == [
        (2, "invalid JSON"),
        (4, "no id"),
        (5, "neither title nor abstract"),
        (6, "'categories' must be a list or a string, not int"),
        (7, "not UTF-8 text"),
        (8, "expected a JSON object, got list"),
    ]
    assert str(problems[0]).startswith(f"{path}:2: invalid JSON")


def test_missing_file(tmp_path):
    with pytest.raises(PapersiftError, match="no such file"):
        list(read_papers(tmp_path / "nope.jsonl"))


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    data = gzip.compress(("".join(json.dumps(r) + "\n" for r in TOY * 50)).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PapersiftError, match="t.jsonl.gz: cannot read"):
        list(read_papers(path))
