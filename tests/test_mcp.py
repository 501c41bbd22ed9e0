"""The MCP server (ui/mcp_server.py) through the SDK's own client: over stdio with
`run_stdio` in a real subprocess (one session for the module), over streamable HTTP
mounted in a parent app as `papersift serve` mounts it, and in-process."""

from __future__ import annotations

import contextlib
import sys
from types import SimpleNamespace

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from indexer.build import build_index
from indexer.records import Paper
from search.engine import open_engine
from search.lists import ReadingLists
from tests.conftest import ROOT, TOY, write_jsonl
from tests.fakes import FakeEncoder

LONG = {"id": "2401.00006", "title": "Sparse retrieval at scale",
        "abstract": " ".join(f"sparse retrieval finding number {i} holds." for i in range(40)),
        "authors": ["Ada Lovelace"], "categories": ["cs.IR"], "published": "2024-06-01"}
# A model that prints while it encodes (as libraries do): none of it may reach the protocol.
LAUNCH = """
import os
from tests.fakes import FakeEncoder
from ui.mcp_server import run_stdio

class Noisy(FakeEncoder):
    def encode(self, texts):
        print("noise from print")
        os.write(1, b"noise on fd 1\\n")
        return super().encode(texts)

run_stdio({index!r}, encoder=Noisy())
"""
CALLS = {
    "search": ("search_papers", {"query": "diffusion distilled one step", "k": 3}),
    "filtered": ("search_papers", {"query": "diffusion", "categories": ["cs.cv"],
                                   "since": "2024-05-01"}),
    "long": ("search_papers", {"query": "sparse retrieval", "k": 1, "mode": "bm25"}),
    "paper": ("get_paper", {"paper_id": "https://arxiv.org/abs/2401.00006v2"}),
    "similar": ("similar_papers", {"paper_id": "2401.00002", "k": 2}),
    "recommend": ("recommend_papers", {"like": ["2401.00002"], "unlike": ["2401.00004"], "k": 2}),
    "lists": ("list_reading_lists", {}),
    "list": ("get_reading_list", {"name": "thesis"}),
    "unknown_id": ("get_paper", {"paper_id": "2501.99999"}),
    "empty_query": ("search_papers", {"query": "   "}),
    "bad_date": ("search_papers", {"query": "diffusion", "since": "2024-13-01"}),
    "bad_k": ("search_papers", {"query": "diffusion", "k": 1000}),
    "bad_category": ("similar_papers", {"paper_id": "2401.00002", "categories": ["zz.XX"]}),
    "unknown_list": ("get_reading_list", {"name": "nope"}),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp")
    index = tmp / "index"
    build_index([write_jsonl(tmp / "papers.jsonl", [*TOY, LONG])], index, FakeEncoder())
    lists = tmp / "lists.sqlite"
    engine = open_engine(index, with_model=False)
    gone = Paper(id="2312.00042", title="A paper no longer indexed", abstract="")
    ReadingLists(lists).add("thesis", [engine.searcher().paper("2401.00003"), gone])
    return SimpleNamespace(tmp=tmp, index=index, lists=lists)


async def _session(client: Client, faults: list | None = None):
    tools = (await client.list_tools()).tools
    results = {name: await client.call_tool(tool, args) for name, (tool, args) in CALLS.items()}
    return SimpleNamespace(tools={t.name: t for t in tools}, results=results, faults=faults)


@pytest.fixture(scope="module")
def stdio(corpus):
    """One stdio session with `run_stdio` in a subprocess; every call made once."""
    params = StdioServerParameters(
        command=sys.executable, args=["-c", LAUNCH.format(index=str(corpus.index))], cwd=str(ROOT),
        env={"PAPERSIFT_LISTS": str(corpus.lists), "HF_HUB_OFFLINE": "1"})
    stderr = corpus.tmp / "stderr.txt"

    async def main():
        faults = []

        async def on_message(message):
            if isinstance(message, Exception):  # a line on stdout that is not a message
                faults.append(message)

        with stderr.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), message_handler=on_message,
                              read_timeout_seconds=60) as client:
                return await _session(client, faults)

    session = anyio.run(main)
    session.stderr = stderr.read_text()
    return session


def _shape(schema: dict) -> dict:
    """A tool's input schema, reduced to what an assistant relies on."""
    keys = ("type", "default", "enum", "minimum", "maximum", "minLength", "maxLength",
            "minItems", "maxItems")
    shape = {name: {k: v for k, v in prop.items() if k in keys}
             for name, prop in schema["properties"].items()}
    return {"required": schema.get("required", []), **shape}


FILTERS = {"since": {"type": "string", "default": "", "maxLength": 10},
           "until": {"type": "string", "default": "", "maxLength": 10},
           "categories": {"type": "array", "default": [], "maxItems": 50},
           "author": {"type": "string", "default": "", "maxLength": 200},
           "sort": {"type": "string", "default": "relevance",
                    "enum": ["relevance", "newest", "upvotes"]}}
K = {"type": "integer", "default": 10, "minimum": 1, "maximum": 100}
PAPER_ID = {"type": "string", "minLength": 1, "maxLength": 300}
INPUTS = {
    "search_papers": {"required": ["query"],
                      "query": {"type": "string", "minLength": 1, "maxLength": 2000}, "k": K,
                      "mode": {"type": "string", "default": "hybrid",
                               "enum": ["hybrid", "dense", "bm25"]}, **FILTERS},
    "get_paper": {"required": ["paper_id"], "paper_id": PAPER_ID},
    "similar_papers": {"required": ["paper_id"], "paper_id": PAPER_ID, "k": K, **FILTERS},
    "recommend_papers": {"required": ["like"],
                         "like": {"type": "array", "minItems": 1, "maxItems": 1000},
                         "unlike": {"type": "array", "default": [], "maxItems": 1000},
                         "k": K, **FILTERS},
    "list_reading_lists": {"required": []},
    "get_reading_list": {"required": ["name"], "name": {"type": "string", "minLength": 1,
                                                        "maxLength": 80}},
}


def test_tools_are_listed_with_typed_described_inputs_and_outputs(stdio):
    assert {name: _shape(t.input_schema) for name, t in stdio.tools.items()} == INPUTS
    for name, t in stdio.tools.items():
        assert all(p.get("description") for p in t.input_schema["properties"].values()), name
        assert t.output_schema and t.output_schema["type"] == "object", name
        assert t.annotations.read_only_hint and not t.annotations.destructive_hint, name
        assert len(t.description) > 60, name
    assert "cite" in stdio.tools["search_papers"].description.lower()


def test_search_returns_ranked_papers_with_citable_ids(stdio):
    result = stdio.results["search"]
    assert not result.is_error
    found = result.structured_content
    assert found["query"] == "diffusion distilled one step" and found["corrected"] is None
    assert not found["no_close_matches"]
    hits = found["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["id"] == "2401.00002"
    assert hits[0]["url"] == "https://arxiv.org/abs/2401.00002"
    assert hits[0]["authors"] == ["Grace Hopper", "Edsger Dijkstra"]
    assert hits[0]["published"] == "2024-02-10" and hits[0]["categories"] == ["cs.CV", "cs.LG"]
    assert hits[0]["abstract"].startswith("We distil") and hits[0]["abstract_truncated"] is False
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"] > 0
    assert hits[0]["sources"]
    assert "2401.00002" in result.content[0].text  # the same answer as text for older clients


def test_filters_act_inside_the_search(stdio):
    hits = stdio.results["filtered"].structured_content["hits"]
    assert [h["id"] for h in hits] == ["2401.00005"]  # cs.cv read as cs.CV, since 2024-05-01


def test_long_abstracts_are_cut_in_lists_and_whole_from_get_paper(stdio):
    hit = stdio.results["long"].structured_content["hits"][0]
    assert hit["id"] == "2401.00006" and hit["abstract_truncated"] is True
    assert hit["abstract"].endswith("…") and 300 < len(hit["abstract"]) <= 601
    paper = stdio.results["paper"].structured_content
    assert paper["id"] == "2401.00006"  # from a versioned URL
    assert paper["abstract"] == LONG["abstract"] and paper["abstract_truncated"] is False


def test_similar_and_recommend_leave_out_their_seeds(stdio):
    similar = [h["id"] for h in stdio.results["similar"].structured_content["hits"]]
    assert len(similar) == 2 and "2401.00002" not in similar
    assert similar[0] == "2401.00005"  # the other diffusion paper
    recommended = [h["id"] for h in stdio.results["recommend"].structured_content["hits"]]
    assert len(recommended) == 2 and not {"2401.00002", "2401.00004"} & set(recommended)


def test_reading_lists_are_read(stdio):
    lists = stdio.results["lists"].structured_content["lists"]
    assert [(x["name"], x["count"]) for x in lists] == [("thesis", 2)]
    papers = stdio.results["list"].structured_content["papers"]
    assert [(p["id"], p["in_index"]) for p in papers] == [("2401.00003", True), ("2312.00042", False)]
    assert papers[0]["title"] == "Retrieval augmented generation for questions"


@pytest.mark.parametrize(("call", "message"), [
    ("unknown_id", "unknown paper id '2501.99999'"),
    ("empty_query", "empty query"),
    ("bad_date", "since: not a YYYY-MM-DD date: '2024-13-01'"),
    ("bad_k", "k: Input should be less than or equal to 100"),
    ("bad_category", "category: no paper has category 'zz.XX'"),
    ("unknown_list", "no reading list named 'nope' (lists: thesis)"),
])
def test_mistakes_are_one_line_tool_errors(stdio, call, message):
    result = stdio.results[call]
    assert result.is_error and result.structured_content is None
    text = result.content[0].text
    assert message in text and "\n" not in text and "Traceback" not in text


def test_nothing_but_protocol_on_stdout(stdio):
    assert "noise on fd 1" in stdio.stderr and "noise from print" in stdio.stderr
    assert stdio.faults == []


def test_http_app_mounted_as_documented(corpus):
    """Routes added to a parent app whose lifespan runs the MCP app's (ui/mcp_server.py)."""
    import httpx2
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from ui.mcp_server import http_app

    engine = open_engine(corpus.index, encoder=FakeEncoder())
    mcp = http_app(lambda: engine, corpus.lists)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with mcp.router.lifespan_context(mcp):
            yield

    app = Starlette(routes=[Route("/api/health", lambda r: PlainTextResponse("ok"))],
                    lifespan=lifespan)
    app.router.routes.extend(mcp.routes)

    async def main():
        async with app.router.lifespan_context(app), httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app), base_url="http://127.0.0.1:8700") as http:
            async with Client(_http_transport(http)) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                found = await client.call_tool("search_papers", {"query": "protein folding"})
            foreign = await http.post("/mcp", json={}, headers={"Host": "evil.example:8700"})
            health = await http.get("/api/health")
        return names, found, foreign, health

    names, found, foreign, health = anyio.run(main)
    assert names == set(INPUTS)
    assert found.structured_content["hits"][0]["id"] == "2401.00004"
    assert foreign.status_code in (400, 421)  # DNS rebinding: another Host is refused
    assert health.text == "ok"


def _http_transport(http):
    from mcp.client.streamable_http import streamable_http_client

    return streamable_http_client("http://127.0.0.1:8700/mcp", http_client=http)


def test_each_call_answers_from_the_newest_generation(corpus, tmp_path):
    """In process: a rebuild is served from the next call on; a missing reading-list
    database is not created by reading it."""
    from ui.mcp_server import create_server

    index = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", TOY)], index, FakeEncoder())
    engine = open_engine(index, encoder=FakeEncoder())
    lists = tmp_path / "none" / "lists.sqlite"
    server = create_server(lambda: engine, lists)

    async def main():
        async with Client(server) as client:
            before = await client.call_tool("get_paper", {"paper_id": "2401.00006"})
            build_index([write_jsonl(tmp_path / "b.jsonl", [*TOY, LONG])], index, FakeEncoder())
            after = await client.call_tool("get_paper", {"paper_id": "2401.00006"})
            no_lists = await client.call_tool("list_reading_lists", {})
        return before, after, no_lists

    before, after, no_lists = anyio.run(main)
    assert before.is_error and after.structured_content["title"] == LONG["title"]
    assert no_lists.structured_content == {"lists": []} and not lists.parent.exists()


def test_cli_refuses_a_missing_index_before_the_protocol(run, tmp_path):
    code, out, err = run("mcp", "--index", tmp_path / "missing")
    assert code == 1 and out == ""
    assert err.startswith("papersift: error:") and err.count("\n") == 1
