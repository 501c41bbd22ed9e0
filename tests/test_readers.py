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


def test_a_bom_keeps_the_first_record(tmp_path):
    for name, opener in (("bom.jsonl", open), ("bom.jsonl.gz", gzip.open)):
        path = tmp_path / name
        with opener(path, "wb") as f:
            f.write(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in TOY).encode())
        papers, problems = split(read_papers(path))
        assert [p.id for p in papers] == [r["id"] for r in TOY] and not problems


def test_a_directory_says_so(tmp_path):
    with pytest.raises(PapersiftError, match=f"^{tmp_path} is a directory"):
        list(read_papers(tmp_path))


def test_records_sqlite_could_not_store_are_bad_lines_not_crashes(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text(
        '{"id": "1", "title": "good"}\n'
        '{"id": "2", "title": "t", "authors": ["A \\ud800"]}\n'
        '{"id": "3\\udfff", "title": "t"}\n'
        '{"id": "4", "title": "t", "upvotes": 99999999999999999999}\n'
        '{"id": "5", "title": "t", "version": 18446744073709551616}\n'
        '{"id": "6", "title": "t", "z": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
        '{"id": "7", "title": "t", "upvotes": ' + "9" * 5000 + "}\n"
        '{"id": "8\\u0000", "title": "t"}\n'
        '{"id": "9", "title": "still read after all that"}\n',
        encoding="ascii",
    )
    papers, problems = split(read_papers(path))
    assert [p.id for p in papers] == ["1", "9"]
    got = [(p.line, p.reason.split(" (")[0]) for p in problems]
    assert got == [
        (2, "'authors' holds an unpaired surrogate \\ud800"),
        (3, "'id' holds an unpaired surrogate \\udfff"),
        (4, "'upvotes' must be a non-negative integer below 2^63, not 99999999999999999999"),
        (5, "'version' must be like 3 or 'v3'"),
        (6, "JSON nested too deeply"),
        (7, "invalid JSON"),
        (8, "'id' holds the control character U+0000: '8\\x00'"),
    ]


def write_csv_text(path, text):
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_csv_unterminated_quote_is_reported_with_its_line(tmp_path):
    path = write_csv_text(tmp_path / "q.csv", (
        'id,title,abstract\n'
        '1,First,"spans\ntwo lines"\n'
        '\n'
        '2,"Second, with comma",x\n'
        '3,"Never closed,x\n'
        '4,Swallowed,y\n'
        '5,Swallowed too,z\n'
    ))
    papers, problems = split(read_papers(path))
    assert [p.id for p in papers] == ["1", "2"]
    assert [str(p) for p in problems] == [
        f"{path}:6: a quote opened in this row is never closed: lines 6-8 (the rest of the "
        "file) not read"]
    # Without a newline at the end, and on the last line alone.
    path = write_csv_text(tmp_path / "r.csv", 'id,title\n1,ok\n2,"oops')
    papers, problems = split(read_papers(path))
    assert [p.id for p in papers] == ["1"] and [p.line for p in problems] == [3]


def test_csv_quotes_that_close_at_the_end_are_fine(tmp_path):
    path = write_csv_text(tmp_path / "ok.csv", 'id,title\n1,"a ""quoted"" word"\n2,"last\nrow"')
    papers, problems = split(read_papers(path))
    assert [p.title for p in papers] == ['a "quoted" word', "last row"] and not problems
    path = write_csv_text(tmp_path / "lenient.csv", 'id,title\n1,5" screen\n2,"x"y\n')
    papers, problems = split(read_papers(path))
    assert [p.title for p in papers] == ['5" screen', "xy"] and not problems


def test_csv_header_with_an_unterminated_quote(tmp_path):
    path = write_csv_text(tmp_path / "h.csv", 'id,"title\n1,x\n')
    with pytest.raises(PapersiftError, match="h.csv:1: the header row opens a quote"):
        list(read_papers(path))


def test_bad_records_never_reach_the_encoder_and_strict_stops(tmp_path, fake_encoder):
    from indexer.build import build_index
    from indexer.errors import BadRecord
    from search import Searcher

    path = write_jsonl(tmp_path / "c.jsonl", [
        *TOY,
        '{"id": "x1", "title": "t", "categories": ["cs.\\ud800"]}',
        '{"id": "x2", "title": "t", "url": "https://arxiv.org/\\udc00"}',
        '{"id": "x3", "title": "t", "keywords": "a, \\ud800"}',
        '{"id": "x4", "title": "t", "num_comments": 9223372036854775808}',
    ])
    report = build_index([path], tmp_path / "ix", fake_encoder)
    assert (report.papers, report.skipped) == (len(TOY), 4)
    assert Searcher(tmp_path / "ix").count == len(TOY)
    with pytest.raises(BadRecord, match=f"{path}:{len(TOY) + 1}: 'categories' holds"):
        build_index([path], tmp_path / "strict", fake_encoder, strict=True)
