"""Dates, categories and digest options as a user types them, checked before any work:
each mistake is one line and exit 2. In-process (`ui.cli.main`) with the fake encoder."""

import json

import pytest


def one_line(result, code, *fragments):
    got, _, err = result
    assert got == code, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("papersift: error: ")
    for fragment in fragments:
        assert fragment in err


@pytest.mark.parametrize("value", ["2025-W01-1", "20250101", "2024-02-30", "2025-01-01T00:00"])
@pytest.mark.parametrize("command", [["search", "graphs"], ["similar", "2401.00001"],
                                     ["recommend", "--like", "2401.00001"]])
def test_only_yyyy_mm_dd_dates(run, toy_index, command, value):
    one_line(run(*command, "--since", value, "--index", toy_index), 2,
             f"--since must be a YYYY-MM-DD date, got {value!r}")


@pytest.mark.parametrize("command", [["search", "graphs"], ["similar", "2401.00001"],
                                     ["recommend", "--like", "2401.00001"]])
def test_since_after_until_is_a_usage_error(run, toy_index, command):
    one_line(run(*command, "--since", "2024-03-01", "--until", "2024-02-01", "--index", toy_index),
             2, "--since 2024-03-01 is after --until 2024-02-01")


def test_a_category_in_another_case_is_the_index_spelling(run, toy_index):
    code, out, _ = run("search", "diffusion", "--category", "cs.cv", "--json", "--no-floor",
                       "--index", toy_index)
    hits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and hits and all("cs.CV" in h["categories"] for h in hits)


@pytest.mark.parametrize("command", [["search", "graphs"], ["similar", "2401.00001"],
                                     ["recommend", "--like", "2401.00001"]])
def test_an_unknown_category_names_the_closest(run, toy_index, command):
    one_line(run(*command, "--category", "cs.LG", "--category", "cs.CK", "--index", toy_index), 2,
             "--category: no paper has category 'cs.CK' (closest: cs.C")


def test_digest_options_are_checked_before_anything_is_written(run, toy_index, tmp_path):
    out = tmp_path / "digests"
    base = ["digest", "--since", "2024-01-01", "--index", toy_index, "--out", out]
    cases = [
        (["--query", "graphs\x1b[2J"], "--query holds the control character U+001B"),
        (["--query", "graphs", "--smtp", "localhost:25", "--to", "me@x.org\r\nBcc: a@b.c"],
         "--to must be an e-mail address"),
        (["--query", "graphs", "--smtp", "localhost:25", "--to", "me@x.org",
          "--from", "bot@x.org\nBcc: a@b.c"], "--from must be an e-mail address"),
        (["--query", "graphs", "--from", "nobody"], "--from must be an e-mail address"),
        (["--query", "graphs", "--until", "20241231"], "--until must be a YYYY-MM-DD date"),
        (["--query", "graphs", "--until", "2023-12-31"], "is after --until 2023-12-31"),
    ]
    for extra, fragment in cases:
        one_line(run(*base, *extra), 2, fragment)
    one_line(run("digest", "--since", "2025-W01-1", "--query", "graphs"), 2, "--since must be")
    (tmp_path / "file").write_text("")
    one_line(run(*base[:-1], tmp_path / "file", "--query", "graphs"), 2, "is not a folder")
    assert not out.exists()


def test_digest_query_on_several_lines_is_one_line(run, toy_index, tmp_path):
    code, out, err = run("digest", "--since", "2024-01-01", "--query", "diffusion\r\nimage",
                         "--index", toy_index, "--out", tmp_path)
    assert code == 0, err
    assert (tmp_path / "papersift-digest-diffusion-image-2024-01-01.md").read_text().startswith(
        "# papersift digest: diffusion image\n")
