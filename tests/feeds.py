"""Answers shaped like the real services', made from bundled papers, for fetch tests, and
the local servers that give them."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "demo-arxiv-2k.jsonl"


def bundled_papers(n: int, skip: int = 0) -> list[dict]:
    with BUNDLED.open(encoding="utf-8") as f:
        lines = [line for _, line in zip(range(skip + n), f, strict=False)]
    return [json.loads(line) for line in lines[skip:]]


def atom_page(papers: list[dict], total: int, start: int, classic: bool = False) -> bytes:
    """An arXiv API page: the November-2025 layout, or the classic one (rel/title on links)."""
    entries = []
    for p in papers:
        pid = f"{p['id']}v{p.get('version', 1)}"
        link = (f'<link href="http://arxiv.org/abs/{pid}" rel="alternate" type="text/html"/>'
                f'<link title="pdf" href="http://arxiv.org/pdf/{pid}" rel="related"/>' if classic
                else f'<link href="https://arxiv.org/abs/{pid}"/><link href="https://arxiv.org/pdf/{pid}"/>')
        cats = "".join(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>'
                       for c in p["categories"])
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in p["authors"])
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{pid}</id><title>{escape(p['title'])}</title>"
            f"<updated>{p['listing_date']}T00:00:00Z</updated>{link}"
            f"<summary>{escape(p['abstract'])}</summary>{cats}"
            f"<published>{p['listing_date']}T00:00:00Z</published>"
            f'<arxiv:primary_category term="{p["primary_category"]}"/>{authors}</entry>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
        "<id>https://arxiv.org/api/x</id><title>arXiv Query</title>"
        f"<opensearch:itemsPerPage>{len(papers)}</opensearch:itemsPerPage>"
        f"<opensearch:totalResults>{total}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>" + "".join(entries) + "</feed>"
    ).encode()


def oai_page(papers: list[dict], token: str | None, deleted: tuple[str, ...] = ()) -> bytes:
    records = []
    for p in papers:
        names = "".join(
            f"<author><keyname>{escape(a.split()[-1])}</keyname>"
            f"<forenames>{escape(' '.join(a.split()[:-1]))}</forenames></author>"
            for a in p["authors"])
        records.append(
            f"<record><header><identifier>oai:arXiv.org:{p['id']}</identifier></header><metadata>"
            f'<arXiv xmlns="http://arxiv.org/OAI/arXiv/"><id>{p["id"]}</id>'
            f"<created>{p['listing_date']}</created><authors>{names}</authors>"
            f"<title>{escape(p['title'])}</title><categories>{' '.join(p['categories'])}</categories>"
            f"<abstract>{escape(p['abstract'])}</abstract></arXiv></metadata></record>")
    for pid in deleted:
        records.append(f'<record><header status="deleted"><identifier>oai:arXiv.org:{pid}'
                       "</identifier></header></record>")
    resumption = f"<resumptionToken>{token}</resumptionToken>" if token else "<resumptionToken/>"
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
            + "".join(records) + resumption + "</ListRecords></OAI-PMH>").encode()


def hf_items(papers: list[dict], upvotes: int = 5) -> list[dict]:
    return [{"paper": {"id": p["id"], "title": p["title"], "summary": p["abstract"],
                       "authors": [{"_id": str(i), "name": a} for i, a in enumerate(p["authors"])],
                       "publishedAt": p["listing_date"] + "T00:00:00.000Z",
                       "upvotes": upvotes + i, "ai_keywords": ["kw"]},
             "numComments": i, "title": p["title"]} for i, p in enumerate(papers)]


class FakeService(BaseHTTPRequestHandler):
    """A quiet request handler for a fake service; `answer` sends one whole response."""

    def answer(self, status: int, body: bytes, kind: str = "text/plain",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1 from a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a service that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
