"""`papersift fetch` and `update --from` as a hostile user types them: every bad option is
one line and exit 2 before any request (or lock, or file); a planted link at the output is
one line and exit 1, never followed. In-process (`ui.cli.main`) against a local HTTP
server that only counts requests."""

from http.server import BaseHTTPRequestHandler

import pytest

from tests.feeds import local_server
from ui.cli import main


class Counting(BaseHTTPRequestHandler):
    paths: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Counting.paths.append(self.path)
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with local_server(Counting) as url:
        yield url


@pytest.fixture
def run(capsys, server, monkeypatch):
    for name in ("ARXIV", "OAI", "HF"):
        monkeypatch.setenv(f"PAPERSIFT_{name}_URL", f"{server}/{name.lower()}")
    Counting.paths.clear()

    def run(*args):
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    yield run
    assert Counting.paths == []  # refused before any request


def one_line(result, code, *fragments):
    got, err = result
    assert got == code, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("papersift: error: ")
    for fragment in fragments:
        assert fragment in err, err


ARXIV = ["arxiv", "--category", "cs.CL"]
MISTAKES = [
    (["hf", "--week", "2025-W54"], "--week must be an ISO week YYYY-Www that exists"),
    (["hf", "--week", "2025-W00"], "--week must be an ISO week"),
    (["hf", "--month", "2025-13"], "--month must be a YYYY-MM month (01 to 12), got '2025-13'"),
    (["hf", "--date", "2025-02-30"], "--date must be a YYYY-MM-DD date, got '2025-02-30'"),
    (["hf", "--week", "next week"], "--week must be an ISO week"),
    (["hf"], "give exactly one of --date YYYY-MM-DD, --week YYYY-Www, --month YYYY-MM"),
    (["hf", "--date", "2025-01-01", "--hf-url", "http://[::1"],
     "--hf-url (or PAPERSIFT_HF_URL) must be an http:// or https:// URL with a host, "
     "got 'http://[::1'"),
    ([*ARXIV, "--arxiv-url", "file:///etc/passwd"], "--arxiv-url (or PAPERSIFT_ARXIV_URL) must be"),
    ([*ARXIV, "--arxiv-url", "http://"], "must be an http:// or https:// URL with a host"),
    ([*ARXIV, "--arxiv-url", "http://h:99999/q"], "must be an http:// or https:// URL"),
    ([*ARXIV, "--arxiv-url", "http://a b/q"], "must be an http:// or https:// URL"),
    (["oai", "--oai-url", "ftp://example.org/oai"], "--oai-url (or PAPERSIFT_OAI_URL) must be"),
    ([*ARXIV, "--since", "2025-02-01", "--until", "2025-01-01"],
     "--since 2025-02-01 is after --until 2025-01-01: no paper can match"),
    (["oai", "--from", "2025-02-01", "--until", "2025-01-01"],
     "--from 2025-02-01 is after --until 2025-01-01"),
    (["oai", "--from", "2025-02-30"], "--from must be a YYYY-MM-DD date, got '2025-02-30'"),
    ([*ARXIV, "--until", "2025-W01-1"], "--until must be a YYYY-MM-DD date"),
    (["arxiv"], "an arXiv fetch needs --category, --since/--until or --query"),
    ([*ARXIV, "--delay", "-1"], "--delay must be seconds from 0 to 3600, got -1.0"),
    ([*ARXIV, "--delay", "nan"], "--delay must be seconds from 0 to 3600, got nan"),
    ([*ARXIV, "--delay", "1e308"], "--delay must be seconds from 0 to 3600"),
    ([*ARXIV, "--delay", "inf"], "--delay must be seconds from 0 to 3600, got inf"),
]


@pytest.mark.parametrize(("args", "message"), MISTAKES)
def test_fetch_mistakes_are_usage_errors_before_any_request(run, tmp_path, args, message):
    out = tmp_path / "out.jsonl"
    one_line(run("fetch", *args, "--out", out), 2, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), MISTAKES)
def test_update_from_checks_the_same_before_the_lock(run, tmp_path, args, message):
    index = tmp_path / "index"
    if args[0] == "oai":  # update's --from names the source; the first day is --since
        args = [a.replace("--from", "--since") for a in args]
        message = message.replace("--from", "--since")
    one_line(run("update", "--from", *args, "--index", index), 2, message)
    assert not index.exists()  # no lock, no fetched/ folder


def test_a_url_from_the_environment_is_checked_too(run, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSIFT_ARXIV_URL", "file:///etc/passwd")
    one_line(run("fetch", *ARXIV, "--out", tmp_path / "o.jsonl"), 2,
             "PAPERSIFT_ARXIV_URL) must be an http:// or https:// URL with a host")


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_planted_part_is_refused_and_never_written(run, tmp_path, plant):
    import os

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    fe = tmp_path / "fe"
    fe.mkdir()
    part = fe / "out.jsonl.part"
    part.symlink_to(victim) if plant == "symlink" else os.mkfifo(part)
    kind = "a symbolic link" if plant == "symlink" else "not a regular file"
    one_line(run("fetch", *ARXIV, "--delay", 0, "--out", fe / "out.jsonl"), 1,
             f"{part}: is {kind}; papersift writes fetched papers only to regular files")
    assert victim.read_text() == "precious" and not (fe / "out.jsonl").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--category", 'cs.CL OR all:"x"'], "is not an arXiv category"),
    (["--category", "cs.CL\n"], "is not an arXiv category"),
    (["--query", "ti:graph\x1b[2J"], "--query holds the control character U+001B"),
])
def test_arxiv_query_parts_are_checked_before_any_request(run, tmp_path, args, message):
    result = run("fetch", "arxiv", *args, "--since", "2025-01-01", "--out", tmp_path / "o.jsonl")
    one_line(result, 2, message)


def test_without_a_url_each_source_uses_its_service(monkeypatch):
    """No --*-url and no PAPERSIFT_*_URL: the checks pass on the service's own address."""
    from indexer.arxiv import ARXIV_API_URL, ARXIV_OAI_URL
    from indexer.hf import HF_DAILY_URL
    from ui.cli_sources import check_fetch
    from ui.settings import Settings

    settings = Settings.load(env={})
    assert (settings.source_url("arxiv"), settings.source_url("oai"), settings.source_url("hf")) \
        == (ARXIV_API_URL, ARXIV_OAI_URL, HF_DAILY_URL)
    check_fetch("arxiv", settings, None, categories=["cs.CL"])
    check_fetch("oai", settings, None, since_option="--from", set_spec="cs")
    check_fetch("hf", settings, None, date="2025-01-06")
    given = Settings.load(env={"PAPERSIFT_HF_URL": "http://127.0.0.1:9/hf"})
    assert given.source_url("hf") == "http://127.0.0.1:9/hf"
