"""Reading lists: the per-user SQLite store, BibTeX/CSV export, BibTeX import."""

import csv
import io
import sqlite3

import bibtexparser
import pytest

from indexer.records import Paper
from search import Searcher
from search.lists import (
    ListError,
    ReadingLists,
    check_name,
    import_bibtex,
    normalise_title,
    read_bibtex,
    to_bibtex,
    to_csv,
    write_export,
)
from tests.conftest import write_jsonl
from ui.settings import Settings, default_index_dir

P1 = Paper(id="2401.00001", title="Graph networks & molecules: 100% of {the} cases_x",
           abstract="", authors=("Ada Lovelace", "Alan Turing"), categories=("cs.LG", "q-bio.BM"),
           primary_category="cs.LG", published="2024-01-02")
P2 = Paper(id="2401.00002", title="Diffusion models distilled into one step", abstract="",
           authors=("Grace Hopper",), categories=("cs.CV",), primary_category="cs.CV",
           published="2024-02-10")
LOCAL = Paper(id="doc-7", title="A paper that is not on arXiv", abstract="",
              authors=("Zoë Ãlvarez",), published="2023-05-01", url="https://example.org/x")


@pytest.fixture
def store(tmp_path):
    return ReadingLists(tmp_path / "user" / "lists.sqlite")


def test_create_add_remove_rename_delete(store):
    assert store.lists() == []
    assert store.add("to read", [P1, P2]) == 2  # made on first add
    assert store.add("to read", [P2]) == 0  # already there
    assert [i.paper.id for i in store.items("to read")] == ["2401.00001", "2401.00002"]
    assert store.items("to read")[0].paper.authors == P1.authors
    assert store.containing("2401.00002") == ["to read"]
    assert store.remove("to read", ["arXiv:2401.00002v3", "9999.99999"]) == 1
    assert store.rename("to read", "  Reading   group ") == "Reading group"
    (only,) = store.lists()
    assert (only.name, only.count) == ("Reading group", 1)
    assert store.delete("Reading group") == 1
    assert store.lists() == []


def test_list_errors_are_one_clear_line(store):
    store.create("a")
    with pytest.raises(ListError, match="'a' exists already"):
        store.create("a")
    with pytest.raises(ListError, match=r"no reading list named 'b' \(lists: a\)"):
        store.items("b")
    for bad, message in (("", "must not be empty"), ("x" * 81, "longer than 80"),
                         ("tab\x07bell", "control characters")):
        with pytest.raises(ListError, match=message):
            check_name(bad)
    store.create("c")
    with pytest.raises(ListError, match="'c' exists already"):
        store.rename("a", "c")


def test_a_database_from_a_newer_papersift_is_refused_untouched(store):
    store.create("kept")
    db = sqlite3.connect(store.path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ListError, match="schema 99"):
        store.lists()


def test_bibtex_export_round_trips(store):
    text = to_bibtex([P1, P2, LOCAL, P1])
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    entries = library.entries
    assert [e.entry_type for e in entries] == ["misc"] * 4
    keys = [e.key for e in entries]
    assert len(set(keys)) == 4 and keys[0].startswith("lovelace2024graph")
    first = {k: f.value for k, f in entries[0].fields_dict.items()}
    assert first["eprint"] == "2401.00001"
    assert first["archivePrefix"] == "arXiv" and first["primaryClass"] == "cs.LG"
    assert first["author"] == "Ada Lovelace and Alan Turing" and first["year"] == "2024"
    assert r"\&" in first["title"] and r"100\%" in first["title"] and r"cases\_x" in first["title"]
    local = {k: f.value for k, f in entries[2].fields_dict.items()}
    assert "eprint" not in local and local["url"] == "https://example.org/x"
    # What we write, we read back to the same papers.
    parsed, unparsed = read_bibtex(text)
    assert unparsed == 0
    assert [e.arxiv_id for e in parsed] == ["2401.00001", "2401.00002", "", "2401.00001"]


def test_unbalanced_braces_in_a_title_cannot_break_the_file():
    broken = Paper(id="2401.00009", title="Open { brace and close } } twice", abstract="")
    library = bibtexparser.parse_string(to_bibtex([broken, P2]))
    assert not library.failed_blocks and len(library.entries) == 2


def test_csv_export(store):
    store.add("l", [P1, LOCAL])
    rows = list(csv.DictReader(io.StringIO(to_csv(store.items("l")))))
    assert [r["id"] for r in rows] == ["2401.00001", "doc-7"]
    assert rows[0]["authors"] == "Ada Lovelace; Alan Turing"
    assert rows[0]["categories"] == "cs.LG q-bio.BM" and rows[1]["url"] == "https://example.org/x"
    assert rows[0]["added"]


BIB = r"""
@article{byeprint, title={Whatever}, eprint={2401.00003v2}, archivePrefix={arXiv}}
@misc{bydoi, title={Another}, doi={10.48550/arXiv.2401.00004}}
@inproceedings{byurl, title={T}, url={https://arxiv.org/abs/2401.00001v1}}
@article{bytitle, title={{Diffusion} Models Distilled into One-Step}, journal={NeurIPS}}
@article{missing, title={Nothing like this is indexed}, doi={10.1000/xyz}}
@article{broken, title={unterminated
"""


def test_import_matches_by_eprint_doi_url_and_title(store, toy_index):
    report = import_bibtex(store, "Imported", BIB, Searcher(toy_index), source="refs.bib")
    ids = sorted(i.paper.id for i in store.items("Imported"))
    assert ids == ["2401.00001", "2401.00002", "2401.00003", "2401.00004"]
    assert [e.key for e in report.missing] == ["missing"]
    assert report.added == 4 and report.unparsed == 1
    # Importing again adds nothing new.
    assert import_bibtex(store, "Imported", BIB, Searcher(toy_index)).added == 0


def test_import_of_no_entries_is_an_error(store, toy_index):
    with pytest.raises(ListError, match="refs.bib: no BibTeX entries"):
        import_bibtex(store, "x", "just words", Searcher(toy_index), source="refs.bib")
    assert store.lists() == []


def test_normalised_titles_ignore_case_latex_and_punctuation():
    assert normalise_title(r"{BERT}: Pre-training of $\alpha$ Deep") == normalise_title(
        "bert pre training of deep")


def test_lists_survive_a_rebuild_and_an_update(store, toy_index, toy_file, tmp_path, fake_encoder):
    from indexer.build import build_index
    from indexer.update import update_index

    searcher = Searcher(toy_index)
    store.add("keep", [searcher.paper("2401.00002"), searcher.paper("2401.00005")])
    saved = store.path.read_bytes()
    build_index([toy_file], toy_index, fake_encoder)
    extra = [{"id": "2501.00001", "title": "New one", "abstract": "new", "published": "2025-01-01"}]
    update_index([write_jsonl(tmp_path / "new.jsonl", extra)], toy_index, fake_encoder)
    assert store.path.read_bytes() == saved  # neither wrote to the lists database
    assert [i.paper.id for i in store.items("keep")] == ["2401.00002", "2401.00005"]
    fresh = Searcher(toy_index)
    assert set(fresh.rows_of([i.paper.id for i in store.items("keep")])) == {
        "2401.00002", "2401.00005"}
    # By default the lists live beside the indexes, never inside the one being served.
    default = Settings.load(index=toy_index, env={}).lists
    assert toy_index not in default.parents and default.parent == default_index_dir().parent


# ---------------------------------------------------------------- hostile exports


def test_bibtex_export_cannot_run_latex_and_keeps_ordinary_titles():
    hostile = [Paper(id=f"2401.0002{i}", title=t, abstract="", authors=("Mallory",))
               for i, t in enumerate([r"\input{/etc/passwd}", r"\immediate\write18{rm -rf /}",
                                      r"\def\x{y} \catcode`\^=12 \csname input\endcsname",
                                      r"^^5cinput{/etc/passwd} and \^^69nput{x}"])]
    ordinary = Paper(id="2401.00030", title=r"Bounds $O(\sqrt{n})$ for $\alpha$-nets in {BERT}",
                     abstract="", authors=(r"Bernhard Sch{\"o}lkopf", r"Marc M\'{e}zard"))
    text = to_bibtex([*hostile, ordinary])
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks and len(library.entries) == 5
    for entry in library.entries[:4]:
        title = entry.fields_dict["title"].value
        for command in ("input", "write18", "immediate", "def", "catcode", "csname"):
            assert f"\\{command}" not in title.replace(r"\textbackslash{}", "|"), title
        assert "^^" not in title
    assert library.entries[0].fields_dict["title"].value == r"{\textbackslash{}input{/etc/passwd}}"
    last = {k: f.value for k, f in library.entries[4].fields_dict.items()}
    assert last["title"] == r"{Bounds $O(\sqrt{n})$ for $\alpha$-nets in {BERT}}"
    assert last["author"] == r"Bernhard Sch{\"o}lkopf and Marc M\'{e}zard"


def test_csv_export_neutralises_formulas(store):
    risky = Paper(id="2401.00040", title="=HYPERLINK(\"http://evil.example\",\"x\")", abstract="",
                  authors=("+1+cmd|' /C calc'!A0", "@SUM(1)"), categories=("-2+3",),
                  url="\tjs", published="2024-01-01")
    store.add("l", [risky, P2])
    rows = list(csv.DictReader(io.StringIO(to_csv(store.items("l")))))
    assert rows[0]["title"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert rows[0]["authors"].startswith("'+1") and rows[0]["categories"] == "'-2+3"
    assert rows[0]["url"] == "'\tjs"
    assert rows[1]["title"] == P2.title and rows[1]["id"] == "2401.00002"  # plain cells kept
    assert rows[1]["published"] == "2024-02-10"


def test_export_replaces_a_regular_file_atomically(tmp_path):
    target = tmp_path / "out.bib"
    target.write_text("old")
    target.chmod(0o640)
    write_export(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o640
    write_export(tmp_path / "fresh.csv", "x")
    assert (tmp_path / "fresh.csv").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.csv", "out.bib"]


def test_export_never_follows_or_replaces_what_is_not_a_regular_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.bib"
    link.symlink_to(victim)
    with pytest.raises(ListError, match="out.bib: is a symbolic link"):
        write_export(link, "x")
    with pytest.raises(ListError, match="is a directory"):
        write_export(tmp_path, "x")
    with pytest.raises(ListError, match="/dev/null: is not a regular file"):
        write_export("/dev/null", "x")
    # a symlink planted where a fixed temp name would be is never written through
    (tmp_path / ".list.bib.tmp").symlink_to(victim)
    write_export(tmp_path / "list.bib", "fine")
    assert victim.read_text() == "precious" and link.is_symlink()
    assert (tmp_path / "list.bib").read_text() == "fine"


def test_a_failed_export_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    import errno
    import os

    target = tmp_path / "out.csv"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ListError, match="out.csv: cannot write \\(No space left on device\\)"):
        write_export(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with pytest.raises(ListError, match="cannot write"):
        write_export(tmp_path / "missing" / "out.csv", "x")


def test_cli_export_to_a_symlink_is_one_line_and_exit_1(store, tmp_path, capsys):
    from ui.cli import main

    store.add("l", [P1])
    link = tmp_path / "out.bib"
    link.symlink_to(tmp_path / "elsewhere.bib")
    args = ["list", "export", "l", "--lists", str(store.path), "--out"]
    assert main([*args, str(link)]) == 1
    assert capsys.readouterr().err == f"papersift: error: {link}: is a symbolic link; give the " \
                                      "path of a regular file to write\n"
    assert not (tmp_path / "elsewhere.bib").exists()
    odd = tmp_path / "[bold]x.csv"  # shown as written, not as rich markup
    assert main([*args, str(odd), "--format", "csv"]) == 0
    assert capsys.readouterr().err == f"Wrote 1 papers to {odd}\n"
    assert odd.read_text().startswith("id,title")
