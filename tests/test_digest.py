"""Digests: content for a fixed window, safe HTML, files, and SMTP to a local server."""

import datetime as dt
import email
import email.policy
import threading

import pytest

from indexer.errors import InvalidQuery
from indexer.records import Paper
from search import Hit, Searcher
from search.digest import (
    Digest,
    DigestError,
    check_address,
    check_line,
    make_digest,
    parse_smtp,
    send,
    title_for,
    to_html,
    to_markdown,
    window,
    write,
)
from tests.conftest import write_jsonl
from tests.feeds import free_port

EVIL = {"id": "2406.00666", "title": "<script>alert(1)</script> Diffusion [x](javascript:1)",
        "abstract": "diffusion distillation <img src=x onerror=alert(2)> one step sampling",
        "authors": ["Mallory <m@x>"], "categories": ["cs.CV"], "published": "2024-06-06"}


@pytest.fixture
def digest_index(tmp_path, fake_encoder, toy_file):
    from indexer.build import build_index

    root = tmp_path / "ix"
    records = toy_file.read_text().splitlines()
    build_index([write_jsonl(tmp_path / "c.jsonl", [*records, EVIL])], root, fake_encoder)
    return root


def test_query_digest_holds_only_the_window(digest_index, fake_encoder):
    searcher = Searcher(digest_index, fake_encoder)
    d = make_digest(searcher, since="2024-02-01", until="2024-05-31", query="diffusion image")
    dates = [h.paper.published for h in d.hits]
    assert dates and all("2024-02-01" <= x <= "2024-05-31" for x in dates)
    assert d.hits[0].id in {"2401.00002", "2401.00005"}
    assert "2406.00666" not in [h.id for h in d.hits]  # published after the window
    md = to_markdown(d)
    assert md.startswith("# papersift digest: diffusion image\n")
    assert "2024-02-01 to 2024-05-31" in md
    assert "(https://arxiv.org/abs/2401.00002)" in md


def test_list_digest_recommends_new_papers_like_the_list(digest_index):
    searcher = Searcher(digest_index)
    d = make_digest(searcher, since="2024-05-01", until="2024-12-31", list_name="diffusion",
                    list_ids=["2401.00002", "gone-from-index"])
    ids = [h.id for h in d.hits]
    assert ids[0] in {"2401.00005", "2406.00666"}
    assert "2401.00002" not in ids  # the list's own papers are not news
    assert "(1 papers)" in d.basis


def test_html_and_markdown_escape_untrusted_text(digest_index, fake_encoder):
    d = make_digest(Searcher(digest_index, fake_encoder), since="2024-06-01", until="2024-06-30",
                    query="diffusion")
    page = to_html(d)
    assert "<script>" not in page and "<img" not in page and "javascript:1)" not in page.split(
        "&lt;script&gt;")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://arxiv.org/abs/2406.00666"' in page
    md = to_markdown(d)
    assert r"\<script>alert(1)\</script> Diffusion \[x\](javascript:1)" in md
    shown = rendered(md)  # what a Markdown viewer makes of it: text, no tag, one safe link
    assert "<script" not in shown and "<img" not in shown and "&lt;script&gt;" in shown
    assert shown.count("<a ") == 1 and 'href="https://arxiv.org/abs/2406.00666"' in shown


def test_digest_input_errors(digest_index, fake_encoder):
    searcher = Searcher(digest_index, fake_encoder)
    with pytest.raises(InvalidQuery, match="either a query or a reading list"):
        make_digest(searcher, since="2024-01-01", query="x", list_name="l", list_ids=["a"])
    with pytest.raises(InvalidQuery, match="after --until"):
        make_digest(searcher, since="2024-05-01", until="2024-01-01", query="x")
    with pytest.raises(DigestError, match="no papers in index"):
        make_digest(searcher, since="2024-01-01", list_name="l", list_ids=["nope"])
    for bad in ("localhost", ":25", "host:99999", "host:x"):
        with pytest.raises(InvalidQuery, match="HOST:PORT"):
            parse_smtp(bad)
    assert parse_smtp("[::1]:2525") == ("::1", 2525)


def test_write_files_and_empty_window(digest_index, fake_encoder, tmp_path):
    d = make_digest(Searcher(digest_index, fake_encoder), since="2030-01-01", until="2030-12-31",
                    query="anything")
    md, page = write(d, tmp_path / "out")
    assert md.name == "papersift-digest-anything-2030-01-01.md" and page.suffix == ".html"
    assert "No new papers in this window." in md.read_text()
    assert "No new papers in this window." in page.read_text()


def test_smtp_delivery_to_a_local_server(digest_index, fake_encoder):
    from aiosmtpd.controller import Controller

    received = []
    done = threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            done.set()
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        d = make_digest(Searcher(digest_index, fake_encoder), since="2024-01-01",
                        until="2024-12-31", query="diffusion")
        send(d, "127.0.0.1", port, to="reader@example.org", sender="bot@example.org")
        assert done.wait(10)
    finally:
        controller.stop()
    (envelope,) = received
    assert envelope.rcpt_tos == ["reader@example.org"] and envelope.mail_from == "bot@example.org"
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "papersift digest: diffusion (2024-01-01 to 2024-12-31)"
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    assert "Diffusion models distilled into one step" in text
    assert "<ol>" in page and "&lt;script&gt;" in page


def test_unreachable_smtp_server_is_one_clear_error(digest_index, fake_encoder):
    port = free_port()  # nobody listens there
    d = make_digest(Searcher(digest_index, fake_encoder), since="2024-01-01", query="x")
    with pytest.raises(DigestError, match=f"cannot send the digest through 127.0.0.1:{port}"):
        send(d, "127.0.0.1", port, to="a@b.c", timeout=5)
    with pytest.raises(InvalidQuery, match="--to must be an e-mail address"):
        send(d, "127.0.0.1", port, to="a@b.c\nBcc: x@y.z")


@pytest.mark.parametrize(
    ("since", "until", "reason"),
    [
        ("2025-W01-1", "", "--since must be a YYYY-MM-DD date, got '2025-W01-1'"),
        ("20250101", "2025-12-31", "--since must be a YYYY-MM-DD date"),
        ("2025-01-01", "20251231", "--until must be a YYYY-MM-DD date"),
        ("", "2025-01-01", "--since is required"),
        ("2025-06-02", "2025-06-01", "--since 2025-06-02 is after --until 2025-06-01$"),
        ("2025-06-02", "", r"--since 2025-06-02 is after --until 2025-06-01 \(today\)"),
    ],
)
def test_digest_window_is_strict(since, until, reason):
    with pytest.raises(InvalidQuery, match=reason):
        window(since, until, today=dt.date(2025, 6, 1))


def test_digest_window_defaults_to_today():
    assert window("2025-05-01", today=dt.date(2025, 6, 1)) == ("2025-05-01", "2025-06-01")


def test_digest_options_with_control_characters(digest_index, fake_encoder):
    assert check_line("--query", " diffusion\r\n  models\t") == "diffusion models"
    with pytest.raises(InvalidQuery, match="--query holds the control character U\\+001B"):
        check_line("--query", "diffusion\x1b[2J")
    for option in ("--to", "--from"):
        for bad in ("me@example.org\r\nBcc: x@y.z", "me@example.org\n", "nobody"):
            with pytest.raises(InvalidQuery, match=f"{option} must be an e-mail address"):
                check_address(option, bad)
    d = make_digest(Searcher(digest_index, fake_encoder), since="2024-01-01",
                    query="diffusion\r\nimage")
    assert d.title == "papersift digest: diffusion image"
    with pytest.raises(InvalidQuery, match="--from must be an e-mail address"):
        send(d, "127.0.0.1", free_port(), to="a@b.c", sender="bot@x\r\nBcc: x@y.z")
    for bad in ("local host:25", "host\n:25", "host:" + "0" * 5000):
        with pytest.raises(InvalidQuery, match="HOST:PORT"):
            parse_smtp(bad)


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_write_refuses_a_target_that_is_not_a_regular_file(digest_index, fake_encoder, tmp_path,
                                                           plant):
    import os

    d = make_digest(Searcher(digest_index, fake_encoder), since="2024-01-01", query="graphs")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    page = out / "papersift-digest-graphs-2024-01-01.html"
    {"symlink": lambda: page.symlink_to(victim), "fifo": lambda: os.mkfifo(page),
     "directory": page.mkdir}[plant]()
    kind = {"symlink": "a symbolic link", "fifo": "not a regular file",
            "directory": "a directory"}[plant]
    with pytest.raises(DigestError, match=f"{page}: is {kind}; the digest is written only"):
        write(d, out)  # a FIFO would block an open() for writing forever
    assert victim.read_text() == "precious"
    assert [p.name for p in out.iterdir()] == [page.name]  # the .md was not written either


def test_write_replaces_regular_files_through_a_temp_file(digest_index, fake_encoder, tmp_path):
    d = make_digest(Searcher(digest_index, fake_encoder), since="2024-01-01", query="graphs")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".papersift-digest-graphs-2024-01-01.md.tmp").symlink_to(victim)  # a guessed temp name
    (out / "papersift-digest-graphs-2024-01-01.md").write_text("last week's")
    md, page = write(d, out)
    assert md.read_text().startswith("# papersift digest: graphs") and page.exists()
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".papersift-digest-graphs-2024-01-01.md.tmp", md.name, page.name])


def test_cli_digest_over_a_planted_link_is_one_line_before_any_work(tmp_path, capsys):
    from ui.cli import main

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "papersift-digest-graphs-2024-01-01.md"
    link.symlink_to(victim)
    args = ["digest", "--since", "2024-01-01", "--query", "graphs", "--out", str(out),
            "--index", str(tmp_path / "no-index-here")]  # refused before the index is opened
    assert main(args) == 1
    assert capsys.readouterr().err == (f"papersift: error: {link}: is a symbolic link; the digest "
                                       "is written only over a regular file (remove it or choose "
                                       "another --out)\n")
    assert victim.read_text() == "precious" and link.is_symlink()


def one_paper_digest(title: str, abstract: str = "", authors=("A. Author",)) -> Digest:
    paper = Paper(id="2406.00001", title=title, abstract=abstract, authors=tuple(authors),
                  published="2024-06-01", primary_category="cs.CL",
                  url="https://arxiv.org/abs/2406.00001")
    return Digest(title_for(query="q"), 'the query "q"', "2024-06-01", "2024-06-30",
                  [Hit(1, 0.9, paper)])


def rendered(markdown: str) -> str:
    """The digest as a CommonMark viewer with GFM strikethrough shows it (HTML)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("strikethrough").render(markdown)


@pytest.mark.parametrize(("title", "written", "shown"), [
    ("Min-$k$%", "Min-$k$%", "Min-$k$%"),
    ("a*b*", r"a\*b\*", "a*b*"),
    ("[x](javascript:alert(1))", r"\[x\](javascript:alert(1))", "[x](javascript:alert(1))"),
    ("<script>", r"\<script>", "&lt;script&gt;"),
    ("_under_", r"\_under\_", "_under_"),
    ("snake_case and a < b, 5 * 3", "snake_case and a < b, 5 * 3",
     "snake_case and a &lt; b, 5 * 3"),
    ("~~gone~~ `code` &amp; C #", r"\~\~gone\~\~ \`code\` \&amp; C \#",
     "~~gone~~ `code` &amp;amp; C #"),
    ("ends with a backslash \\", "ends with a backslash \\\\", "ends with a backslash \\"),
])
def test_markdown_title_is_literal_with_few_backslashes(title, written, shown):
    md = to_markdown(one_paper_digest(title))
    assert f"1. **[{written}](https://arxiv.org/abs/2406.00001)**" in md
    page = rendered(md)
    assert f'<a href="https://arxiv.org/abs/2406.00001">{shown}</a>' in page
    assert page.count("<a ") == 1 and "<em>" not in page and "<del>" not in page
    assert "<script" not in page and "<code>" not in page


@pytest.mark.parametrize(("text", "written"), [
    ("# not a heading", r"\# not a heading"),
    ("> not a quote", r"\> not a quote"),
    ("- not a list", r"\- not a list"),
    ("1. not a list", r"1\. not a list"),
    ("2024) not a list", r"2024\) not a list"),
    ("--- not a rule", r"\--- not a rule"),
    ("Plain words, 10% of them.", "Plain words, 10% of them."),
])
def test_markdown_lines_never_start_a_block(text, written):
    md = to_markdown(one_paper_digest("Title", abstract=text, authors=[text]))
    assert f"\n   {written}\n" in md  # the abstract line
    assert f"\n   {written} · 2024-06-01 · cs.CL\n" in md  # the authors line
    page = rendered(md)
    for tag in ("<h1>Title", "<blockquote>", "<ul>", "<hr", "<h2>"):
        assert tag not in page
    assert page.count("<ol>") == 1 and page.count("<li>") == 1
